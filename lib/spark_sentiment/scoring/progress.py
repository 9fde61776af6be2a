"""Progress of a long scoring action, from the driver: Spark's status tracker, polled at a steady interval.

Each line says how many tasks of the scoring's Spark jobs are done of those known so far, the rows scored
so far and their rate (native engine), the elapsed time and an estimate of the time left, e.g.::

    scoring delta:/lake/reviews: tasks 37/120 (31%), 2 running, 0 failed, 1,184 rows (12.5 rows/s),
    95 s elapsed, ETA 213 s

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
from dataclasses import dataclass
from typing import Iterator

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    seconds: float
    done: int
    total: int
    running: int
    failed: int
    rows: int | None = None  # rows scored so far (native engine), None when not counted

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def line(self, what: str) -> str:
        eta = ""
        if 0 < self.done < self.total:
            eta = f", ETA {self.seconds * (self.total - self.done) / self.done:.0f} s"
        rows = ""
        if self.rows is not None:
            rate = self.rows / self.seconds if self.seconds > 0 else 0.0
            rows = f", {self.rows:,} rows ({rate:,.1f} rows/s)"
        return (
            f"{what}: tasks {self.done}/{self.total} ({self.fraction:.0%}), {self.running} running, "
            f"{self.failed} failed{rows}, {self.seconds:.0f} s elapsed{eta}"
        )


def _sample(tracker, group: str, started: float, rows=None, per_row: int = 1) -> Sample:
    done = total = running = failed = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        finished = job is not None and job.status == "SUCCEEDED"
        for stage_id in job.stageIds if job else []:
            stage = tracker.getStageInfo(stage_id)
            # A stage whose output an earlier job left behind is skipped: it never runs a task.
            if stage is not None and not (finished and stage.numCompletedTasks == 0):
                total += stage.numTasks
                done += stage.numCompletedTasks
                running += stage.numActiveTasks
                failed += stage.numFailedTasks
    counted = int(rows.value) // per_row if rows is not None else None
    return Sample(time.monotonic() - started, done, total, running, failed, counted)


@contextmanager
def watch(spark: SparkSession, what: str, interval: float, rows=None, per_row: int = 1) -> Iterator[list[Sample]]:
    """Log the progress of every Spark job this thread starts inside the block, every ``interval`` seconds
    (0: off), and once at the end; yields the list the samples are appended to. ``rows``: an accumulator
    of the texts scored, when the engine counts them (``per_row`` texts per row: one per text column).

    The block's jobs run in a job group of their own; a job group the caller had set is restored after.
    """
    samples: list[Sample] = []
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

    def record() -> None:
        sample = _sample(tracker, group, started, rows, per_row)
        if sample.total:
            samples.append(sample)
            log.info("%s", sample.line(what))

    def poll() -> None:
        while not stop.wait(interval):
            record()

    thread = threading.Thread(target=poll, name="spark-sentiment-progress", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()
        record()
        for key, value in previous.items():
            context.setLocalProperty(key, value)


def samples_as_metrics(samples: list[Sample]) -> Iterator[tuple[int, dict[str, float]]]:
    """``(step, metrics)`` for MLflow per sample: tasks done and fraction done (step = whole seconds)."""
    for sample in samples:
        values = {"progress_tasks_done": float(sample.done), "progress_fraction": sample.fraction}
        if sample.rows is not None:
            values["progress_rows"] = float(sample.rows)
        yield int(sample.seconds), values
