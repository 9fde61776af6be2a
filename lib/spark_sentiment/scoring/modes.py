"""The scoring job's write modes, one function each over one :class:`.run.ScoringRun`, chosen once by
``output.mode`` (:data:`MODES`). Each returns a :class:`ModeOutcome`; the job turns it into the summary."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from ..io.delta import WriteResult, retry_on_conflict
from ..io.snapshot import check_keys
from .incremental import run_incremental
from .run import ScoringRun
from .stats import RunStats
from .stream import StreamOutcome, run_stream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModeOutcome:
    """What a write mode did: ``status`` (succeeded, skipped, empty_input, up_to_date), the statistics of the
    rows it scored, the Delta write and its attempts; ``output_version`` of a skipped write; the incremental
    mode's ``method`` and ``previous_input_version``; the stream's micro-batches."""

    status: str
    stats: RunStats | None = None
    write: WriteResult | None = None
    attempts: int | None = None
    output_version: int | None = None
    method: str | None = None
    previous_input_version: int | None = None
    stream: StreamOutcome | None = None

    @classmethod
    def written(cls, write: WriteResult, **fields) -> ModeOutcome:
        return cls("succeeded" if write.committed else "skipped", write=write, output_version=write.version, **fields)


def _before_scoring(run: ScoringRun, exists: bool) -> ModeOutcome | None:
    """The batch and incremental modes' checks before the model runs: this ``output.batch_id`` already
    committed (skipped), an empty input (nothing written), duplicate keys where rows are matched on them."""
    cfg, target, where = run.cfg, run.target, run.table.describe()
    previous = run.already_committed(cfg.output.batch_id, exists=exists)
    if previous is not None:
        log.info(
            "batch %s already committed to %s (version %s); skipping",
            cfg.output.batch_id,
            target.describe(),
            previous["version"],
        )
        return ModeOutcome("skipped", output_version=previous["version"])
    df = run.table.read()
    if df.isEmpty():
        log.warning("%s has no rows: nothing scored, %s left as it is", where, target.describe())
        return ModeOutcome("empty_input")
    if cfg.output.mode in ("merge", "incremental"):
        check_keys(df, cfg.input.key_columns, where)
    return None


def write_batch(run: ScoringRun, exists: bool) -> ModeOutcome:
    """``overwrite``, ``append`` and ``merge``: score the whole input, write it in one commit."""
    stopped = _before_scoring(run, exists)
    if stopped is not None:
        return stopped
    cfg, where = run.cfg, run.table.describe()
    scored, stats = run.score_rows(run.table.read(), f"scoring {where}")
    log.info("scored %d rows of %s with engine %s", stats.rows, where, cfg.engine)
    tag = run.tag(cfg.output.batch_id, mode=cfg.output.mode, source_version=run.table.version)
    attempt = lambda: run.write(scored, cfg.output.mode, tag)  # noqa: E731
    write, attempts = retry_on_conflict(f"writing {run.target.describe()}", attempt, cfg.output.max_retries)
    log.info("wrote %s (%s), Delta version %s", run.target.describe(), cfg.output.mode, write.version)
    return ModeOutcome.written(write, stats=stats, attempts=attempts)


def write_incremental(run: ScoringRun, exists: bool) -> ModeOutcome:
    """``incremental``: only new or changed rows, planned again from scratch after a lost commit race."""
    stopped = _before_scoring(run, exists)
    if stopped is not None:
        return stopped
    what = f"writing {run.target.describe()}"
    outcome, attempts = retry_on_conflict(what, lambda: run_incremental(run), run.cfg.output.max_retries)
    how = {"method": outcome.method, "previous_input_version": outcome.previous_input_version}
    if outcome.write is None:
        return ModeOutcome("up_to_date", stats=outcome.stats, attempts=attempts, **how)
    log.info("wrote %s (incremental), Delta version %s", run.target.describe(), outcome.write.version)
    return ModeOutcome.written(outcome.write, stats=outcome.stats, attempts=attempts, **how)


def write_stream(run: ScoringRun, exists: bool) -> ModeOutcome:
    """``stream``: Structured Streaming, one commit per micro-batch (:mod:`.stream`)."""
    outcome = run_stream(run)
    committed = [b for b in outcome.batches if b.status == "committed"]
    version = committed[-1].output_version if committed else None
    return ModeOutcome("succeeded" if committed else "up_to_date", output_version=version, stream=outcome)


MODES: dict[str, Callable[[ScoringRun, bool], ModeOutcome]] = {
    "overwrite": write_batch,
    "append": write_batch,
    "merge": write_batch,
    "incremental": write_incremental,
    "stream": write_stream,
}
