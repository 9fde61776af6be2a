"""The scoring job's library side: read -> check -> label text columns -> write Delta -> summary in MLflow.

Model resolution and every input check happen on the driver before any data is scored; the scored rows
are materialised once (checkpointed) so statistics and the write use the same predictions and a failure
while scoring writes nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..config import to_flat_dict
from ..config.score import ScoreJobConfig
from ..data.sources import read_spark, require_columns, resolve_source
from ..errors import DataError
from ..model import tracking
from ..model.registry import ResolvedModel, resolve_model
from ..writing.delta import Target, target_exists, write_scored
from .engines import scoring_function
from .predictor import PredictorOptions
from .text_policy import check_text_columns

log = logging.getLogger(__name__)

SENTIMENT_SUFFIX = "_sentiment"
SCORE_SUFFIX = "_sentiment_score"


def read_input(spark: SparkSession, cfg: ScoreJobConfig) -> tuple[DataFrame, str]:
    """The input DataFrame and a description of it (``table x`` / ``delta:/path``)."""
    if cfg.input.table:
        source = resolve_source(cfg.input.table, "table", key="input.table")
    else:
        fmt = "auto" if cfg.input.format == "auto" else cfg.input.format
        source = resolve_source(str(cfg.input.path), fmt, key="input.path")
        if source.format not in ("delta", "parquet"):
            raise DataError(f"input.path {cfg.input.path} is {source.format}, expected a Delta table or Parquet files")
    return read_spark(spark, source), source.describe()


def add_sentiment_columns(
    spark: SparkSession,
    df: DataFrame,
    resolved: ResolvedModel,
    text_columns: list[str],
    engine: str = "native",
    options: PredictorOptions | None = None,
) -> DataFrame:
    """All input columns plus ``<c>_sentiment``, ``<c>_sentiment_score`` per text column, ``sentiment_model``
    and ``scored_at``. Lazy: nothing is scored until an action runs.
    """
    score = scoring_function(spark, resolved, engine, options or PredictorOptions())
    clashes = [f"{c}{SENTIMENT_SUFFIX}" for c in text_columns if f"{c}{SENTIMENT_SUFFIX}" in df.columns]
    if clashes:
        raise DataError(f"input already has column '{clashes[0]}'; score the original table, not a scored one")
    results = {c: score(F.col(f"`{c}`")) for c in text_columns}
    columns = [F.col(f"`{c}`") for c in df.columns]
    for c, result in results.items():
        columns += [result["label"].alias(f"{c}{SENTIMENT_SUFFIX}"), result["score"].alias(f"{c}{SCORE_SUFFIX}")]
    columns += [F.lit(resolved.label).alias("sentiment_model"), F.current_timestamp().alias("scored_at")]
    return df.select(*columns)


def _spread(df: DataFrame, partitions: int | None) -> DataFrame:
    """Repartition to ``partitions``; by default only lift a table with fewer partitions than the cluster has
    cores (a small or ``limit``-ed table is often one partition, which would score on one core)."""
    if partitions:
        return df.repartition(partitions)
    cores = df.sparkSession.sparkContext.defaultParallelism
    return df.repartition(cores) if df.rdd.getNumPartitions() < cores else df


def _statistics(scored: DataFrame, text_columns: list[str]) -> dict[str, Any]:
    """Rows, scored rows and label counts per text column (two small jobs over the checkpointed rows)."""
    labels = {c: F.col(f"`{c}{SENTIMENT_SUFFIX}`") for c in text_columns}
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
        }
    return stats


def score_table(spark: SparkSession, cfg: ScoreJobConfig) -> dict[str, Any]:
    """Run the scoring job described by ``cfg``; returns the run summary (also logged to MLflow)."""
    started = time.perf_counter()
    tracking.configure(cfg.mlflow)
    resolved = resolve_model(cfg.model.uri)  # fails before any data is read
    log.info("model %s resolved to %s", cfg.model.uri, resolved.uri)
    target = Target(cfg.output.path, cfg.output.table)
    target_exists(spark, target)  # an output that is not Delta fails before scoring
    df, where = read_input(spark, cfg)
    check_text_columns(df, cfg.input.text_columns, where)
    require_columns(df.columns, cfg.input.key_columns, where, what="key column")
    df = _spread(df, cfg.score.partitions)
    options = PredictorOptions(
        batch_size=cfg.score.batch_size,
        max_tokens=cfg.score.max_tokens,
        max_length=cfg.score.max_length,
        threads=cfg.score.threads,
        device=cfg.score.device,
        precision=cfg.score.precision,
    )
    scored = add_sentiment_columns(spark, df, resolved, cfg.input.text_columns, cfg.engine, options)
    # Score exactly once: a persisted plan is not enough, Delta's MERGE re-plans its source and missed the
    # cache (3,000 rows were scored twice). A checkpoint cuts the lineage, so the write cannot re-run the model.
    scored = scored.localCheckpoint(eager=True)
    stats = _statistics(scored, cfg.input.text_columns)
    scored_seconds = time.perf_counter() - started
    log.info("scored %d rows of %s with engine %s in %.1f s", stats["rows"], where, cfg.engine, scored_seconds)
    write = write_scored(scored, target, cfg.output.mode, cfg.input.key_columns)
    log.info("wrote %s (%s), Delta version %s", target.describe(), cfg.output.mode, write.get("version"))
    seconds = time.perf_counter() - started
    summary = {
        "status": "succeeded",
        "engine": cfg.engine,
        "model_uri": cfg.model.uri,
        "model": resolved.label,
        "model_version": resolved.version,
        "input": where,
        "output": target.describe(),
        "mode": cfg.output.mode,
        "rows_in": stats["rows"],
        "rows_scored": sum(c["scored"] for c in stats["columns"].values()),
        "null_texts": sum(c["null_texts"] for c in stats["columns"].values()),
        "label_counts": {c: v["label_counts"] for c, v in stats["columns"].items()},
        "output_version": write.get("version"),
        "rows_written": write.get(
            "numOutputRows", write.get("numTargetRowsInserted", 0) + write.get("numTargetRowsUpdated", 0)
        ),
        "seconds": round(seconds, 2),
        "rows_per_second": round(stats["rows"] / scored_seconds, 2) if scored_seconds > 0 else None,
    }
    _log_run(cfg, summary)
    return summary


def _log_run(cfg: ScoreJobConfig, summary: dict[str, Any]) -> None:
    with mlflow.start_run(run_name=f"score {summary['output']}") as run:
        mlflow.log_params({f"cfg.{k}": v for k, v in to_flat_dict(cfg).items() if k != "spark.conf"})
        mlflow.log_params({"model": summary["model"], "input": summary["input"], "output": summary["output"]})
        metrics = {
            k: summary[k]
            for k in ("rows_in", "rows_scored", "null_texts", "seconds", "rows_per_second")
            if summary[k] is not None
        }
        for column, counts in summary["label_counts"].items():
            metrics.update({f"label_count.{column}.{label}": n for label, n in counts.items()})
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"job": "score", "engine": summary["engine"], "model": summary["model"]})
        mlflow.log_dict(summary, "summary.json")
        summary["mlflow_run_id"] = run.info.run_id
