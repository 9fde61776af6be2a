"""Progress of a long scoring action, from the driver, at a steady interval.

Each line says the rows scored so far of the rows to score (the input is counted first), their rate, the
scoring stage's tasks (done, running, failed), the elapsed time and an estimate of the time left, e.g.::

    scoring delta:/lake/reviews: 1,184 of 3,000 rows (39%), 12.5 rows/s, tasks 0/2 done, 2 running,
    0 failed, 95 s elapsed, ETA 145 s

Rows come from the running tasks while they run: the native engine's workers send the texts they have done
to the driver as they go (:mod:`inference.live`); where those cannot arrive, from an accumulator that counts
a task's rows when it ends. Tasks are those of the scoring job only: the input is counted (and cached) by a
job of its own before the watch starts, so the scoring job is one stage over the cached rows. Without row
counts (engine mlflow) the fraction and ETA come from tasks. The last line, after the job, gives the exact
rows and 100%.

The lines go to the job's log (stderr); the samples become the MLflow metric histories
``progress_tasks_done``, ``progress_fraction`` and ``progress_rows`` (step = seconds since the start) of the
scoring run. Under Spark Connect there is no status tracker in the client, so there are no progress lines.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Iterator

from pyspark.sql import SparkSession

from ..inference.live import listener_for
from ..inference.worker import Reports

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    seconds: float
    done: int
    total: int
    running: int
    failed: int
    rows: int | None = None  # rows scored so far (native engine), None when not counted
    total_rows: int | None = None  # rows to score, None when not counted

    @property
    def fraction(self) -> float:
        if self.rows is not None and self.total_rows:
            return min(self.rows / self.total_rows, 1.0)
        return self.done / self.total if self.total else 0.0

    def line(self, what: str) -> str:
        eta = ""
        if 0 < self.fraction < 1:
            eta = f", ETA {self.seconds * (1 - self.fraction) / self.fraction:.0f} s"
        tasks = f"tasks {self.done}/{self.total} done, {self.running} running, {self.failed} failed"
        if self.rows is None:
            return f"{what}: {tasks} ({self.fraction:.0%}), {self.seconds:.0f} s elapsed{eta}"
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        of = f" of {self.total_rows:,}" if self.total_rows is not None else ""
        return (
            f"{what}: {self.rows:,}{of} rows ({self.fraction:.0%}), {rate:,.1f} rows/s, {tasks}, "
            f"{self.seconds:.0f} s elapsed{eta}"
        )


@dataclass(frozen=True)
class Counters:
    """What the scoring function reports back while it runs (all optional): ``rows``, an accumulator of
    texts done at task end; ``live``, the address workers send texts done to while tasks run."""

    rows: Any = None
    live: Any = None
    per_row: int = 1  # texts per row: one per text column

    @classmethod
    def of(cls, reports: Reports, per_row: int) -> Counters:
        """The counters of a scoring function's :class:`~spark_sentiment.inference.worker.Reports`."""
        return cls(reports.rows, reports.live, per_row)


def _tasks(tracker, group: str, listener) -> tuple[int, int, int, int, set[int]]:
    """Tasks done, total, running, failed over the group's stages that run tasks: those the workers
    report rows from when they do, else those submitted or done (a stage whose output an earlier job left
    behind, such as the cached input's shuffle, is skipped and never submitted).

    The status store updates a running stage's task counts lazily (a task's start can wait for the next
    task end or heartbeat), so tasks that reported rows count as running too.
    """
    reported = listener.stages() if listener is not None else set()
    active = set(tracker.getActiveStageIds())
    done = total = running = failed = 0
    stages: set[int] = set()
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        ids = list(job.stageIds) if job else []
        scoring = {i for i in ids if i in reported}
        for stage_id in ids:
            stage = tracker.getStageInfo(stage_id)
            if stage is None or (scoring and stage_id not in scoring):
                continue
            if stage_id not in active and stage.numCompletedTasks + stage.numFailedTasks == 0:
                continue
            stages.add(stage_id)
            total += stage.numTasks
            done += stage.numCompletedTasks
            live = listener.running(stage_id) if stage_id in reported else 0
            running += min(
                max(stage.numActiveTasks, live - stage.numCompletedTasks), stage.numTasks - stage.numCompletedTasks
            )
            failed += stage.numFailedTasks
    return done, total, running, failed, stages


def _rows(counters: Counters, listener, stages: set[int]) -> int | None:
    """Rows done: the larger of the running tasks' live counts and the ended tasks' accumulator."""
    if counters.rows is None and listener is None:
        return None
    texts = int(counters.rows.value) if counters.rows is not None else 0
    if listener is not None:
        texts = max(texts, listener.texts(stages))
    return texts // counters.per_row


@contextmanager
def watch(
    spark: SparkSession,
    what: str,
    interval: float,
    counters: Counters | None = None,
    total_rows: int | None = None,
) -> Iterator[list[Sample]]:
    """Log the progress of every Spark job this thread starts inside the block, every ``interval`` seconds
    (0: off), and once at the end (with ``total_rows`` as the rows when the block succeeded); yields the
    list the samples are appended to.

    The block's jobs run in a job group of their own; a job group the caller had set is restored after.
    """
    samples: list[Sample] = []
    counters = counters or Counters()
    try:
        context = spark.sparkContext if interval > 0 else None
    except (AttributeError, NotImplementedError) as exc:  # Spark Connect: no SparkContext in the client
        log.info("no progress lines under %s (%s)", type(spark).__name__, str(exc).splitlines()[0])
        context = None
    if context is None:
        yield samples
        return
    previous = {key: context.getLocalProperty(key) for key in ("spark.jobGroup.id", "spark.job.description")}
    group = f"spark-sentiment-{uuid.uuid4().hex[:12]}"
    context.setJobGroup(group, what, interruptOnCancel=False)
    tracker, started, stop = context.statusTracker(), time.monotonic(), threading.Event()
    listener = listener_for(counters.live)
    stages: set[int] = set()

    def sample() -> Sample:
        done, total, running, failed, found = _tasks(tracker, group, listener)
        stages.update(found)
        rows = _rows(counters, listener, stages)
        return Sample(time.monotonic() - started, done, total, running, failed, rows, total_rows)

    def record(last: Sample | None = None) -> None:
        current = last or sample()
        if current.total:
            samples.append(current)
            log.info("%s", current.line(what))

    def poll() -> None:
        while not stop.wait(interval):
            record()

    thread = threading.Thread(target=poll, name="spark-sentiment-progress", daemon=True)
    thread.start()
    succeeded = False
    try:
        yield samples
        succeeded = True
    finally:
        stop.set()
        thread.join()
        last = sample()
        if succeeded and total_rows is not None and last.rows is not None:
            last = replace(last, rows=total_rows)  # the exact count, whatever datagrams were lost
        record(last)
        if listener is not None:
            listener.forget(stages)
        for key, value in previous.items():
            context.setLocalProperty(key, value)


def samples_as_metrics(samples: list[Sample]) -> Iterator[tuple[int, dict[str, float]]]:
    """``(step, metrics)`` for MLflow per sample: tasks done and fraction done (step = whole seconds)."""
    for sample in samples:
        values = {"progress_tasks_done": float(sample.done), "progress_fraction": sample.fraction}
        if sample.rows is not None:
            values["progress_rows"] = float(sample.rows)
        yield int(sample.seconds), values
