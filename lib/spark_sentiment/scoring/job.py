"""The scoring job's library side: read -> check -> label text columns -> write Delta -> summary in MLflow.

Model resolution, the model load test and every input check happen on the driver before any data is
scored; the input is pinned to one Delta version; the scored rows are materialised once (checkpointed) so
statistics and the write use the same predictions; the write is one Delta commit, retried (bounded) when
it loses a race with a concurrent writer. A failure anywhere before the commit leaves the output as it was.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any, Callable, TypeVar

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import faults
from ..config import to_flat_dict
from ..config.score import ScoreJobConfig, ScoreSection
from ..data.snapshot import InputTable, check_keys, open_input
from ..data.sources import require_columns
from ..errors import DataError
from ..evaluation.distributions import distribution
from ..evaluation.drift import judge, reference_distribution
from ..model import tracking
from ..model.registry import ResolvedModel, resolve_model
from ..names import quote
from ..redaction import config_params, scrub
from ..writing.delta import CONFLICTS, CommitTag, Target, delta_table, last_tag, target_exists, write_scored
from .engines import ScoreFn, scoring_function
from .incremental import plan_incremental
from .predictor import PredictorOptions
from .text_policy import check_text_columns

log = logging.getLogger(__name__)

SENTIMENT_SUFFIX = "_sentiment"
SCORE_SUFFIX = "_sentiment_score"
T = TypeVar("T")


def check_output_columns(columns: list[str], text_columns: list[str]) -> None:
    """The columns the job adds must not exist in the input (a scored table fed back in, say)."""
    added = [name for c in text_columns for name in (f"{c}{SENTIMENT_SUFFIX}", f"{c}{SCORE_SUFFIX}")]
    clashes = [c for c in added + ["sentiment_model", "scored_at"] if c in columns]
    if clashes:
        raise DataError(f"input already has column '{clashes[0]}'; score the original table, not a scored one")


def label_columns(df: DataFrame, score: ScoreFn, model_label: str, text_columns: list[str]) -> DataFrame:
    """All input columns plus ``<c>_sentiment``, ``<c>_sentiment_score`` per text column, ``sentiment_model``
    and ``scored_at``. Lazy: nothing is scored until an action runs."""
    check_output_columns(df.columns, text_columns)
    columns = [F.col(quote(c)) for c in df.columns]
    for c in text_columns:
        result = score(F.col(quote(c)))
        columns += [result["label"].alias(f"{c}{SENTIMENT_SUFFIX}"), result["score"].alias(f"{c}{SCORE_SUFFIX}")]
    columns += [F.lit(model_label).alias("sentiment_model"), F.current_timestamp().alias("scored_at")]
    return df.select(*columns)


def add_sentiment_columns(
    spark: SparkSession,
    df: DataFrame,
    resolved: ResolvedModel,
    text_columns: list[str],
    engine: str = "native",
    options: PredictorOptions | None = None,
) -> DataFrame:
    """:func:`label_columns` with the engine built from ``resolved`` (benchmarks and notebooks)."""
    score = scoring_function(spark, resolved, engine, options or PredictorOptions())
    return label_columns(df, score, resolved.label, text_columns)


def predictor_options(score: ScoreSection, allow_pickle_weights: bool = False) -> PredictorOptions:
    """How workers run the model, from the ``score`` config section (scoring and evaluation jobs)."""
    return PredictorOptions(
        batch_size=score.batch_size,
        max_tokens=score.max_tokens,
        max_length=score.max_length,
        threads=score.threads,
        device=score.device,
        precision=score.precision,
        allow_pickle_weights=allow_pickle_weights,
    )


def _spread(df: DataFrame, partitions: int | None) -> DataFrame:
    """Repartition to ``partitions``; by default only lift a table with fewer partitions than the cluster has
    cores (a small or ``limit``-ed table is often one partition, which would score on one core)."""
    if partitions:
        return df.repartition(partitions)
    cores = df.sparkSession.sparkContext.defaultParallelism
    return df.repartition(cores) if df.rdd.getNumPartitions() < cores else df


def _statistics(scored: DataFrame, text_columns: list[str]) -> dict[str, Any]:
    """Rows, scored rows, label counts and the label/score distribution per text column (small jobs over
    the checkpointed rows)."""
    labels = {c: F.col(quote(f"{c}{SENTIMENT_SUFFIX}")) for c in text_columns}
    counts = [F.count(label).alias(f"scored{i}") for i, label in enumerate(labels.values())]
    row = scored.agg(F.count(F.lit(1)).alias("rows"), *counts).first()
    per_label = (
        scored.select(
            F.explode(
                F.array(*[F.struct(F.lit(c).alias("column"), label.alias("label")) for c, label in labels.items()])
            ).alias("x")
        )
        .where(F.col("x.label").isNotNull())
        .groupBy("x.column", "x.label")
        .count()
        .collect()
    )
    stats: dict[str, Any] = {"rows": int(row["rows"]), "columns": {}}
    for i, c in enumerate(text_columns):
        scored_rows = int(row[f"scored{i}"])
        stats["columns"][c] = {
            "scored": scored_rows,
            "null_texts": stats["rows"] - scored_rows,
            "label_counts": {r["label"]: int(r["count"]) for r in per_label if r["column"] == c},
            "distribution": distribution(scored, f"{c}{SENTIMENT_SUFFIX}", f"{c}{SCORE_SUFFIX}"),
        }
    return stats


def _score(df: DataFrame, score: ScoreFn, model_label: str, cfg: ScoreJobConfig) -> tuple[DataFrame, dict]:
    """Label ``df`` and materialise it: the model runs exactly once per row, whatever reads it after."""
    scored = label_columns(_spread(df, cfg.score.partitions), score, model_label, cfg.input.text_columns)
    # A persisted plan is not enough: Delta's MERGE re-plans its source and missed the cache (3,000 rows were
    # scored twice). A checkpoint cuts the lineage, so the write cannot re-run the model.
    scored = scored.localCheckpoint(eager=True)
    return scored, _statistics(scored, cfg.input.text_columns)


def _retrying(what: str, attempt: Callable[[], T], retries: int) -> tuple[T, int]:
    """Run ``attempt``; after a Delta commit conflict (nothing was committed) run it again, at most
    ``retries`` more times with jittered backoff. Returns the result and the number of attempts."""
    for number in range(1, retries + 2):
        try:
            return attempt(), number
        except CONFLICTS as exc:
            first = str(exc).splitlines()[0]
            if number > retries:
                message = f"{what}: gave up after {number} attempts, each lost a Delta conflict: {first}"
                raise DataError(message) from None
            log.warning("%s: Delta commit conflict (attempt %d of %d), retrying: %s", what, number, retries + 1, first)
            time.sleep(min(0.5 * 2 ** (number - 1), 8.0) + random.uniform(0, 0.5))
    raise AssertionError("unreachable")


def _txn_version(previous: dict[str, Any] | None) -> int:
    """Delta txnVersion of an incremental commit: above the last one we recorded, and above a wall-clock
    floor so it still increases if the history that recorded it has expired."""
    last = int((previous or {}).get("txn_version") or 0)
    return max(last + 1, int(time.time() * 1000))


def _write(
    scored: DataFrame,
    cfg: ScoreJobConfig,
    target: Target,
    tag: CommitTag,
    deletes: DataFrame | None = None,
) -> dict[str, Any]:
    faults.at("before_write", target.path)
    write = write_scored(scored, target, cfg.output.mode, cfg.input.key_columns, tag, deletes)
    faults.at("after_write")
    return write


def _incremental_once(
    spark: SparkSession,
    cfg: ScoreJobConfig,
    table: InputTable,
    score: ScoreFn,
    resolved: ResolvedModel,
    target: Target,
    app_id: str,
) -> dict[str, Any]:
    """Plan, score and write one incremental run (re-planned from scratch after a conflict)."""
    previous = last_tag(spark, target, app_id)
    output = delta_table(spark, target).toDF() if target_exists(spark, target) else None
    plan = plan_incremental(
        table,
        table.read(),
        output,
        previous,
        cfg.input.key_columns,
        resolved.label,
        cfg.output.rescore,
        cfg.output.deletes,
    )
    outcome: dict[str, Any] = {"method": plan.method, "previous_input_version": plan.previous_version}
    if plan.upserts is None:
        return {**outcome, "stats": None, "write": None}
    deletes = plan.deletes.localCheckpoint(eager=True) if plan.deletes is not None else None
    to_delete = deletes.count() if deletes is not None else 0
    scored, stats = _score(plan.upserts, score, resolved.label, cfg)
    log.info("%s: %d rows scored, %d keys to delete (%s)", table.describe(), stats["rows"], to_delete, plan.method)
    if stats["rows"] == 0 and to_delete == 0:
        return {**outcome, "stats": stats, "write": None}
    state = {"mode": "incremental", "source_version": table.version, "model": resolved.label}
    tag = CommitTag(app_id, _txn_version(previous), state)
    return {**outcome, "stats": stats, "write": _write(scored, cfg, target, tag, deletes if to_delete else None)}


def score_table(spark: SparkSession, cfg: ScoreJobConfig) -> dict[str, Any]:
    """Run the scoring job described by ``cfg``; returns the run summary (also logged to MLflow).

    ``status`` is ``succeeded`` (a commit was written), ``up_to_date`` (incremental: nothing new),
    ``skipped`` (this ``output.batch_id`` was already committed) or ``empty_input`` (nothing written).
    """
    started = time.perf_counter()
    tracking.configure(cfg.mlflow)
    resolved = resolve_model(cfg.model.uri)  # fails before any data is read
    log.info("model %s resolved to %s", cfg.model.uri, resolved.uri)
    options = predictor_options(cfg.score, cfg.model.allow_pickle_weights)
    score = scoring_function(spark, resolved, cfg.engine, options)  # loads the model once on the driver
    reference = reference_distribution(resolved)
    log.info("model %s packaged and load-tested", resolved.label)
    target = Target(cfg.output.path, cfg.output.table)
    target_exists(spark, target)  # an output that is not Delta fails before scoring
    table = open_input(spark, cfg.input.path, cfg.input.table, cfg.input.format)
    df, where = table.read(), table.describe()
    log.info("input %s at version %s", where, table.version)
    check_text_columns(df, cfg.input.text_columns, where)
    require_columns(df.columns, cfg.input.key_columns, where, what="key column")
    check_output_columns(df.columns, cfg.input.text_columns)
    app_id = cfg.output.app_id or f"spark-sentiment:{where}"
    summary: dict[str, Any] = {
        "status": "succeeded",
        "engine": cfg.engine,
        "model_uri": cfg.model.uri,
        "model": resolved.label,
        "model_version": resolved.version,
        "input": where,
        "input_version": table.version,
        "output": target.describe(),
        "mode": cfg.output.mode,
        "app_id": app_id,
        "batch_id": cfg.output.batch_id,
    }
    previous = last_tag(spark, target, app_id)
    if cfg.output.batch_id is not None and previous and int(previous.get("txn_version") or -1) >= cfg.output.batch_id:
        log.info(
            "batch %s already committed to %s (version %s); skipping",
            cfg.output.batch_id,
            target.describe(),
            previous["version"],
        )
        return _finish(cfg, summary, started, status="skipped", output_version=previous["version"])
    if df.isEmpty():
        log.warning("%s has no rows: nothing scored, %s left as it is", where, target.describe())
        return _finish(cfg, summary, started, status="empty_input")
    if cfg.output.mode in ("merge", "incremental"):
        check_keys(df, cfg.input.key_columns, where)
    what = f"writing {target.describe()}"
    if cfg.output.mode == "incremental":
        once = lambda: _incremental_once(spark, cfg, table, score, resolved, target, app_id)  # noqa: E731
        outcome, attempts = _retrying(what, once, cfg.output.max_retries)
        stats, write = outcome.pop("stats"), outcome.pop("write")
        summary.update(outcome)
        if write is None:
            return _finish(cfg, summary, started, stats, reference, status="up_to_date", write_attempts=attempts)
    else:
        scored, stats = _score(df, score, resolved.label, cfg)
        log.info("scored %d rows of %s with engine %s", stats["rows"], where, cfg.engine)
        state = {"mode": cfg.output.mode, "source_version": table.version, "model": resolved.label}
        tag = CommitTag(app_id, cfg.output.batch_id, state)
        write, attempts = _retrying(what, lambda: _write(scored, cfg, target, tag), cfg.output.max_retries)
    log.info("wrote %s (%s), Delta version %s", target.describe(), cfg.output.mode, write.get("version"))
    return _finish(
        cfg,
        summary,
        started,
        stats,
        reference,
        status="succeeded" if write["committed"] else "skipped",
        output_version=write["version"],
        write_attempts=attempts,
        rows_inserted=write.get("numTargetRowsInserted", write.get("numOutputRows", 0)),
        rows_updated=write.get("numTargetRowsUpdated", 0),
        rows_deleted=write.get("numTargetRowsDeleted", 0),
    )


def _drift(cfg: ScoreJobConfig, reference: dict | None, columns: dict[str, dict]) -> dict[str, dict]:
    """Judge each text column's predictions against the model's eval-set distribution; warn when drifted."""
    drift = {}
    for column, stats in columns.items():
        drift[column] = judge(reference, stats["distribution"], cfg.monitor.psi_threshold, cfg.monitor.min_rows)
        if drift[column].get("drifted"):
            log.warning(
                "drift in %s: label PSI %.3f, score PSI %.3f (threshold %.2f) against the model's eval set",
                column,
                drift[column]["label_psi"],
                drift[column]["score_psi"],
                cfg.monitor.psi_threshold,
            )
    return drift


def _finish(
    cfg: ScoreJobConfig,
    summary: dict[str, Any],
    started: float,
    stats: dict | None = None,
    reference: dict | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Complete the summary (row counts, drift, timing) and log it as an MLflow run."""
    columns = (stats or {}).get("columns", {})
    seconds = time.perf_counter() - started
    rows = (stats or {}).get("rows", 0)
    drift = _drift(cfg, reference, columns) if columns else {}
    summary.update(
        {
            "rows_in": rows,
            "rows_scored": sum(c["scored"] for c in columns.values()),
            "null_texts": sum(c["null_texts"] for c in columns.values()),
            "label_counts": {c: v["label_counts"] for c, v in columns.items()},
            "distributions": {c: v["distribution"] for c, v in columns.items()},
            "drift": drift,
            "drifted": any(d.get("drifted") for d in drift.values()),
            **fields,
            "seconds": round(seconds, 2),
            "rows_per_second": round(rows / seconds, 2) if rows and seconds > 0 else None,
        }
    )
    _log_run(cfg, summary)
    return summary


def _metric_name(name: str) -> str:
    """MLflow accepts only alphanumerics and ``_-. :/`` in metric names; column names may hold anything."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name)


def _log_run(cfg: ScoreJobConfig, summary: dict[str, Any]) -> None:
    for key in ("model_uri", "input", "output"):
        summary[key] = scrub(str(summary[key]))
    with mlflow.start_run(run_name=f"score {summary['output']}") as run:
        mlflow.log_params(config_params(to_flat_dict(cfg)))
        mlflow.log_params({"model": summary["model"], "input": summary["input"], "output": summary["output"]})
        numbers = ("rows_in", "rows_scored", "null_texts", "seconds", "rows_per_second", "write_attempts")
        numbers += ("rows_inserted", "rows_updated", "rows_deleted")
        metrics = {k: summary[k] for k in numbers if summary.get(k) is not None}
        for column, judged in summary["drift"].items():
            psis = {k: judged[k] for k in ("label_psi", "score_psi") if k in judged}
            metrics.update({_metric_name(f"drift.{column}.{k}"): value for k, value in psis.items()})
        for column, counts in summary["label_counts"].items():
            metrics.update({_metric_name(f"label_count.{column}.{label}"): n for label, n in counts.items()})
        mlflow.log_metrics(metrics)
        tags = {"job": "score", "engine": summary["engine"], "model": summary["model"], "status": summary["status"]}
        mlflow.set_tags({**tags, "drifted": str(summary["drifted"]).lower()})
        mlflow.log_dict(summary, "summary.json")
        summary["mlflow_run_id"] = run.info.run_id
