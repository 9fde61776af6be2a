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
from ..io.delta import check_output
from ..io.fs import data_paths
from ..io.snapshot import open_input
from ..io.tables import TableRef, require_columns
from ..model import tracking
from ..model.registry import resolve_model
from ..monitoring.drift import reference_distribution
from .config import ScoreJobConfig
from .hooks import WriteHooks
from .modes import MODES, ModeOutcome
from .report import add_stats, log_run
from .result import ScoreSummary
from .run import ScoringRun
from .schema import planned_columns
from .stream import StreamOutcome

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
    existed = check_output(
        spark, target, df.columns + added_columns(cfg.input.text_columns, score.granularity), cfg.table_write()
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
    run = ScoringRun(spark, cfg, table, score, resolved, target, summary.app_id, hooks)
    outcome = MODES[cfg.output.mode](run, existed)
    complete(summary, outcome, cfg, reference)
    summary.seconds = round(time.perf_counter() - started, 2)
    rows = summary.rows_in
    summary.rows_per_second = round(rows / summary.seconds, 2) if rows and summary.seconds > 0 else None
    log_run(cfg, summary, outcome.stats.progress if outcome.stats else ())
    return summary


def complete(summary: ScoreSummary, outcome: ModeOutcome, cfg: ScoreJobConfig, reference: dict | None) -> None:
    """The summary's outcome fields from what the write mode did."""
    summary.status, summary.output_version = outcome.status, outcome.output_version
    summary.write_attempts = outcome.attempts
    if outcome.method is not None:
        summary.method, summary.previous_input_version = outcome.method, outcome.previous_input_version
    add_stats(summary, cfg, outcome.stats, reference)
    if outcome.write is not None:
        write = outcome.write
        summary.rows_inserted, summary.rows_updated = write.rows_inserted, write.rows_updated
        summary.rows_deleted = write.rows_deleted
    if outcome.stream is not None:
        stream_summary(summary, outcome.stream, cfg)


def default_app_id(spark: SparkSession, cfg: ScoreJobConfig, where: str) -> str:
    """The Delta txnAppId of this job's commits: one per input (batch modes), one per checkpoint (stream)."""
    if cfg.output.mode == "stream":
        return f"spark-sentiment:stream:{data_paths(spark).qualify(str(cfg.stream.checkpoint))}"
    return f"spark-sentiment:{where}"


def stream_summary(summary: ScoreSummary, outcome: StreamOutcome, cfg: ScoreJobConfig) -> None:
    """The summary of a streaming run: totals over its micro-batches, each micro-batch's record, and the
    precision each kind of worker chose over all of them."""
    summary.rows_in = outcome.rows
    summary.label_counts = outcome.label_counts()
    summary.rows_scored = sum(sum(counts.values()) for counts in summary.label_counts.values())
    summary.null_texts = outcome.rows * len(cfg.input.text_columns) - summary.rows_scored
    summary.rows_deleted = sum(b.deleted_keys for b in outcome.batches)
    summary.stream = outcome.as_dict(cfg)
    summary.precision = [dict(record) for record in outcome.precision]


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
