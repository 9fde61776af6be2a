"""The scoring job with a fault at one point, run by test_faults as its own process (and process group).

    python tests/fault_job.py FAULT [--go FILE] [--set key=value ...]

FAULT is ``none``, ``kill:before_write``, ``kill:during_write`` or ``kill:after_write`` (SIGKILL to the whole process
group, driver Python and JVM alike) or ``barrier:<dir>:<n>`` (wait before writing until ``n`` jobs are
there). The faults live here, in the tests, and reach the job through its write hooks. Rows are labeled by
the keyword predictor of ``tests/stubs.py`` (the model is resolved and recorded as usual). With ``--go
FILE`` the process starts its Spark session (the JVM, with the job's ``spark.conf``) and then waits for FILE
before the job runs, so a test can start it while it prepares the tables.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import stubs
from pyspark import cloudpickle
from spark_sentiment.scoring.hooks import WriteHooks
from spark_sentiment.scoring.job import main


def kill() -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def data_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def commits(root: Path) -> int:
    return len(list((root / "_delta_log").glob("*.json")))


def kill_when_data_lands(target) -> None:
    """Kill the job once the write has put a new data file into the output. The commit can follow within
    milliseconds, so the kill may land before or after it; the test accepts either table state (the
    previous version or the complete new one) and checks that nothing in between is ever visible."""
    root = Path(target.path)
    known, committed = data_files(root), commits(root)

    def watch() -> None:
        while not (data_files(root) - known) and commits(root) == committed:
            time.sleep(0.001)
        kill()

    threading.Thread(target=watch, daemon=True).start()


def barrier(folder: str, parties: int) -> None:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / str(os.getpid())).touch()
    deadline = time.monotonic() + 300
    while len(list(path.iterdir())) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {folder}: {parties} jobs never arrived")
        time.sleep(0.01)


def hooks_for(fault: str) -> WriteHooks:
    kind, _, argument = fault.partition(":")
    if fault == "none":
        return WriteHooks()
    if fault == "kill:before_write":
        return WriteHooks(before_write=lambda target: kill())
    if fault == "kill:during_write":
        return WriteHooks(before_write=kill_when_data_lands)
    if fault == "kill:after_write":
        return WriteHooks(after_write=lambda target, result: kill())
    if kind == "barrier":
        folder, _, parties = argument.rpartition(":")
        return WriteHooks(before_write=lambda target: barrier(folder, int(parties)))
    raise SystemExit(f"unknown fault {fault!r}")


def start_session_then_wait(go: str, args: list[str]) -> None:
    """The session the job will find active (built from the job's own ``--set`` options), then wait for ``go``."""
    from spark_sentiment.config import load_config
    from spark_sentiment.core.session import get_spark
    from spark_sentiment.scoring.config import ScoreJobConfig

    sets = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--set"]
    cfg = load_config(ScoreJobConfig, None, sets)
    get_spark(cfg.spark.app_name, cfg.spark.conf)
    deadline = time.monotonic() + 300
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{go} never appeared")
        time.sleep(0.05)


if __name__ == "__main__":
    fault, args = sys.argv[1], sys.argv[2:]
    if args[:1] == ["--go"]:
        go, args = args[1], args[2:]
        start_session_then_wait(go, args)
    # The keyword predictor: what is under test is the write, and Python workers that import no torch keep
    # several of these jobs affordable on two cores.
    cloudpickle.register_pickle_by_value(stubs)
    sys.exit(main(args, hooks=hooks_for(fault), factory=stubs.KeywordPredictor))
