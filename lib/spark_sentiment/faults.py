"""Fault injection for the fault tests. Inert unless switched on; never set these in production.

Driver side, environment variable ``SPARK_SENTIMENT_FAULT``:

* ``kill:before_write`` / ``kill:after_write``: SIGKILL the job's whole process group (driver Python and
  JVM) after scoring, before the write starts / right after the write committed;
* ``kill:during_write``: SIGKILL it as soon as the write has put a data file into the output, before the
  Delta commit;
* ``barrier:<dir>:<n>``: before writing, wait until ``n`` jobs have reached that point (so concurrent jobs
  really write at the same time).

Executor side, Spark local property ``spark_sentiment.fault`` = ``worker_exit_once:<marker file>``: the
first Python worker that scores a batch creates the marker and exits, once per marker.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

ENV = "SPARK_SENTIMENT_FAULT"
PROPERTY = "spark_sentiment.fault"

log = logging.getLogger(__name__)


def _kill() -> None:
    log.warning("fault injection: SIGKILL to process group %d", os.getpgrp())
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def _commits(root: Path) -> int:
    return len(list((root / "_delta_log").glob("*.json")))


def _kill_when_data_lands(root: Path) -> None:
    """Watch ``root`` and kill the job once a new data file exists but no new commit does."""
    known, commits = _files(root) if root.exists() else set(), _commits(root) if root.exists() else 0

    def watch() -> None:
        while True:
            if root.exists() and _files(root) - known and _commits(root) == commits:
                _kill()
            time.sleep(0.002)

    threading.Thread(target=watch, name="fault-during-write", daemon=True).start()


def _barrier(folder: str, parties: int) -> None:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{os.getpid()}").touch()
    deadline = time.monotonic() + 300
    while len(list(path.iterdir())) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fault barrier {folder}: {parties} parties never arrived")
        time.sleep(0.01)


def at(point: str, output_dir: str | None = None) -> None:
    """Driver hook: called by the scoring job at ``before_write`` and ``after_write``."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    kind, _, argument = spec.partition(":")
    if kind == "kill" and argument == point:
        _kill()
    elif kind == "kill" and argument == "during_write" and point == "before_write" and output_dir:
        _kill_when_data_lands(Path(output_dir))
    elif kind == "barrier" and point == "before_write":
        folder, _, parties = argument.rpartition(":")
        _barrier(folder, int(parties))


def in_worker() -> None:
    """Executor hook: called by the native UDF before its first batch."""
    from pyspark import TaskContext

    context = TaskContext.get()
    spec = context.getLocalProperty(PROPERTY) if context is not None else None
    if not spec or not spec.startswith("worker_exit_once:"):
        return
    marker = Path(spec.partition(":")[2])
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return
    os._exit(17)  # what an OOM-killed or crashed worker looks like to Spark
