"""The scoring job: read -> check -> label text columns -> write Delta -> summary in MLflow.

Model resolution, the model load test and every input check happen on the driver before any data is
scored; the input is pinned to one Delta version; the scored rows are materialised once (checkpointed) so
statistics and the write use the same predictions; the write is one Delta commit, retried (bounded) when
it loses a race with a concurrent writer. A failure anywhere before the commit leaves the output as it was.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Sequence

from pyspark.sql import SparkSession

from ..config.cli import packaged_config, run_job
from ..core.session import is_local
from ..inference.columns import added_columns, check_output_columns, label_columns
from ..inference.engines import scoring_function
from ..inference.predictor import Predictor, PredictorFactory, PredictorOptions
from ..inference.text_policy import check_text_columns
from ..io.delta import CommitTag, WriteResult, check_output, last_tag, retry_on_conflict, write_scored
from ..io.fs import data_paths
from ..io.snapshot import check_keys, open_input
from ..io.tables import TableRef, require_columns
from ..model import tracking
from ..model.registry import resolve_model
from ..monitoring.drift import reference_distribution
from .config import ScoreJobConfig
from .hooks import WriteHooks, write_through
from .incremental import run_incremental
from .report import add_stats, log_run
from .result import ScoreSummary
from .rows import precision_of, score_rows
from .schema import add_missing_columns, planned_columns
from .stats import RunStats
from .stream import StreamOutcome, run_stream

log = logging.getLogger(__name__)
DESCRIPTION = "Label review text in a Delta table."


def score_table(
    spark: SparkSession,
    cfg: ScoreJobConfig,
    *,
    factory: PredictorFactory = Predictor,
    hooks: WriteHooks | None = None,
) -> ScoreSummary:
    """Run the scoring job described by ``cfg``; returns the run summary (also logged to MLflow).

    Parameters
    ----------
    spark
        The session to run in (the job never builds its own here).
    cfg
        Validated scoring configuration.
    factory
        Builds the native engine's predictor on each Python worker (default: the transformers model).
    hooks
        Callbacks around the Delta write.
    """
    started = time.perf_counter()
    hooks = hooks or WriteHooks()
    tracking.configure(cfg.mlflow, local=is_local(spark))
    resolved = resolve_model(cfg.model.uri)  # fails before any data is read
    log.info("model %s resolved to %s", cfg.model.uri, resolved.uri)
    options = PredictorOptions.of(cfg.score, cfg.model.allow_pickle_weights)
    score = scoring_function(spark, resolved, cfg.engine, options, factory)  # loads the model once on the driver
    reference = reference_distribution(resolved)
    log.info("model %s packaged and load-tested", resolved.label)
    target = TableRef.of(cfg.output.path, cfg.output.table)
    table = open_input(spark, cfg.input.path, cfg.input.table, cfg.input.format)
    df, where = table.read(), table.describe()
    log.info("input %s at version %s", where, table.version)
    check_text_columns(df, cfg.input.text_columns, where)
    require_columns(df.columns, cfg.input.key_columns, where, what="key column")
    check_output_columns(df.columns, cfg.input.text_columns, score.granularity)
    # Table features, append-only, column names: what the output could not take fails before scoring.
    write_mode = cfg.stream.write if cfg.output.mode == "stream" else cfg.output.mode
    existed = check_output(
        spark, target, df.columns + added_columns(cfg.input.text_columns, score.granularity), write_mode
    )
    planned = label_columns(df, score, resolved.label, cfg.input.text_columns).schema  # analysed, not run
    added = planned_columns(spark, target, planned, cfg) if existed else []  # checked now, added at the write
    summary = ScoreSummary(
        status="succeeded",
        engine=cfg.engine,
        model_uri=cfg.model.uri,
        model=resolved.label,
        model_version=resolved.version,
        input=where,
        input_version=table.version,
        output=target.describe(),
        mode=cfg.output.mode,
        app_id=cfg.output.app_id or default_app_id(spark, cfg, where),
        batch_id=cfg.output.batch_id,
        columns_added=added,
    )

    def finish(stats: RunStats | None = None, write: WriteResult | None = None, attempts: int | None = None):
        add_stats(summary, cfg, stats, reference)
        if write is not None:
            summary.status = "succeeded" if write.committed else "skipped"
            summary.output_version = write.version
            summary.rows_inserted, summary.rows_updated = write.rows_inserted, write.rows_updated
            summary.rows_deleted = write.rows_deleted
            log.info("wrote %s (%s), Delta version %s", target.describe(), cfg.output.mode, write.version)
        summary.write_attempts = attempts
        summary.seconds = round(time.perf_counter() - started, 2)
        rows = summary.rows_in
        summary.rows_per_second = round(rows / summary.seconds, 2) if rows and summary.seconds > 0 else None
        log_run(cfg, summary, stats.progress if stats else ())
        return summary

    if cfg.output.mode == "stream":
        outcome = run_stream(spark, cfg, table, score, resolved, target, summary.app_id, hooks)
        stream_summary(summary, outcome, cfg)
        summary.precision = [dict(record) for record in precision_of(score)]  # over all micro-batches
        return finish()

    previous = last_tag(spark, target, summary.app_id, exists=existed)
    committed_batch = previous.get("txn_version") if previous else None
    if cfg.output.batch_id is not None and committed_batch is not None and int(committed_batch) >= cfg.output.batch_id:
        log.info(
            "batch %s already committed to %s (version %s); skipping",
            cfg.output.batch_id,
            target.describe(),
            previous["version"],
        )
        summary.status, summary.output_version = "skipped", previous["version"]
        return finish()
    if df.isEmpty():
        log.warning("%s has no rows: nothing scored, %s left as it is", where, target.describe())
        summary.status = "empty_input"
        return finish()
    if cfg.output.mode in ("merge", "incremental"):
        check_keys(df, cfg.input.key_columns, where)
    what = f"writing {target.describe()}"
    if cfg.output.mode == "incremental":
        once = lambda: run_incremental(cfg, table, score, resolved, target, summary.app_id, hooks)  # noqa: E731
        outcome, attempts = retry_on_conflict(what, once, cfg.output.max_retries)
        summary.method, summary.previous_input_version = outcome.method, outcome.previous_input_version
        if outcome.write is None:
            summary.status = "up_to_date"
            return finish(outcome.stats, attempts=attempts)
        return finish(outcome.stats, outcome.write, attempts)
    columns, partitions = cfg.input.text_columns, cfg.score.partitions
    what = f"scoring {where}"
    scored, stats = score_rows(df, score, resolved.label, columns, partitions, cfg.progress_seconds, what)
    log.info("scored %d rows of %s with engine %s", stats.rows, where, cfg.engine)
    state = {"mode": cfg.output.mode, "source_version": table.version, "model": resolved.label}
    state["granularity"] = score.granularity
    tag = CommitTag(summary.app_id, cfg.output.batch_id, state)

    def attempt() -> WriteResult:
        add_missing_columns(spark, target, scored.schema, cfg)
        return write_through(
            hooks, target, lambda: write_scored(scored, target, cfg.output.mode, cfg.input.key_columns, tag)
        )

    write, attempts = retry_on_conflict(what, attempt, cfg.output.max_retries)
    return finish(stats, write, attempts)


def default_app_id(spark: SparkSession, cfg: ScoreJobConfig, where: str) -> str:
    """The Delta txnAppId of this job's commits: one per input (batch modes), one per checkpoint (stream)."""
    if cfg.output.mode == "stream":
        return f"spark-sentiment:stream:{data_paths(spark).qualify(str(cfg.stream.checkpoint))}"
    return f"spark-sentiment:{where}"


def stream_summary(summary: ScoreSummary, outcome: StreamOutcome, cfg: ScoreJobConfig) -> None:
    """The summary of a streaming run: totals over its micro-batches and each micro-batch's record."""
    committed = [b for b in outcome.batches if b.status == "committed"]
    summary.status = "succeeded" if committed else "up_to_date"
    summary.rows_in = outcome.rows
    summary.label_counts = outcome.label_counts()
    summary.rows_scored = sum(sum(counts.values()) for counts in summary.label_counts.values())
    summary.null_texts = outcome.rows * len(cfg.input.text_columns) - summary.rows_scored
    summary.rows_deleted = sum(b.deleted_keys for b in outcome.batches)
    summary.output_version = committed[-1].output_version if committed else None
    summary.stream = outcome.as_dict(cfg)


def main(
    argv: Sequence[str] | None = None,
    *,
    default_config: Path | None = None,
    factory: PredictorFactory = Predictor,
    hooks: WriteHooks | None = None,
) -> int:
    """Entry point (``jobs/score.py``): parse, run in the active or a new session, print the summary line."""

    def body(cfg: ScoreJobConfig) -> ScoreSummary:
        from ..core.session import get_spark
        from ..io.results import check_places, publish

        spark = get_spark(cfg.spark.app_name, cfg.spark.conf)
        check_places(spark, cfg.report)
        summary = score_table(spark, cfg, factory=factory, hooks=hooks)
        publish(spark, cfg.report, "score", summary.as_dict())
        return summary

    args = sys.argv[1:] if argv is None else argv
    return run_job(args, ScoreJobConfig, default_config, body, DESCRIPTION)


def cli() -> int:
    """Console entry point ``spark-sentiment-score`` (also ``jobs/score.py``): ``main`` with the packaged
    ``score.yaml`` as the default config."""
    return main(default_config=packaged_config("score.yaml"))
