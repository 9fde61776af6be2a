"""Faults: a dying Python worker, a driver killed at several points, two jobs racing on one output.

Real Spark and Delta throughout. The faults are the tests' own: a predictor factory that makes a worker
exit, and write hooks that SIGKILL a job's process group (``tests/fault_job.py``), make the driver die, or
hold two jobs at a barrier. Processes are started only where the process is the point: the kill during the
write (it runs in the background from the start of the session, see ``tests/out_of_process.py``) and the
second racing driver. These tests label with the keyword predictor (what they test is the
write), here and in the jobs they start. Every test asserts an invariant -- the output is the previous
version or the complete new one, no row is lost or duplicated, one change is committed once -- not one
particular schedule.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from fault_job import barrier
from out_of_process import fault_job, resolved_jars
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.scoring.hooks import WriteHooks
from spark_sentiment.scoring.job import score_table
from stubs import ExitOnceFactory, KeywordPredictor
from support.data import REPO
from support.processes import kill_group
from support.tables import change_source, clean_result, contents, job, prepared, versions


def referenced_files(spark, path) -> set[str]:
    return {Path(f).name for f in spark.read.format("delta").load(str(path)).inputFiles()}


@pytest.fixture(scope="module")
def jars(spark) -> str:
    return resolved_jars(spark)


def start_job(tmp_path: Path, name: str, source, out, fault: str, jars: str) -> tuple[subprocess.Popen, Path]:
    """``tests/fault_job.py`` in its own process group (the kill takes the whole group: Python and JVM).
    It starts its Spark session at once and runs the job when the returned file is created: the test
    prepares the tables meanwhile."""
    args, env, go = fault_job(tmp_path, name, source, out, fault, jars)
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return proc, go


@contextlib.contextmanager
def stopped_on_error(proc: subprocess.Popen):
    """Kill the job's process group if the preparation around it fails (it would wait for its go file)."""
    try:
        yield
    except BaseException:
        kill_group(proc)
        raise


def test_python_worker_dying_once_is_retried_to_the_clean_result(spark, tiny_model, cdf_source, tmp_path):
    marker = tmp_path / "worker-died"
    factory = ExitOnceFactory(str(marker))
    summary = score_table(spark, job(cdf_source, tmp_path / "out", "output.mode=merge"), factory=factory)
    assert marker.exists(), "the fault did not fire"
    assert summary.status == "succeeded" and summary.rows_in == 6
    assertDataFrameEqual(contents(spark, tmp_path / "out"), clean_result(spark, cdf_source, tmp_path))


class DriverDied(BaseException):
    """A driver crash at a hook: a BaseException, so no ``except Exception`` in the job can swallow it."""


def die(*_args) -> None:
    raise DriverDied()


def rerun_completes_then_finds_nothing(spark, source, out, committed: bool, clean) -> None:
    rerun = score_table(spark, job(source, out), factory=KeywordPredictor)
    assert rerun.status == ("up_to_date" if committed else "succeeded")
    assertDataFrameEqual(contents(spark, out), clean)
    assert score_table(spark, job(source, out), factory=KeywordPredictor).status == "up_to_date"


@pytest.mark.slow
def test_driver_killed_during_the_write_leaves_previous_or_complete_table(spark, killed_run):
    """A real SIGKILL of the job's whole process group (Python driver and JVM) once the write has put data
    files into the output: the one point where a dying process can leave something behind. The job ran in
    the background (``tests/out_of_process.py``); here its outcome is checked."""
    run = killed_run
    done = run.job.result()
    assert done.returncode == -9, (done.stdout + done.stderr)[-3000:]
    out, version, clean = run.output, run.version, run.clean
    committed = versions(spark, out) > version
    # Readers see the previous version or the complete new one, never anything in between.
    assertDataFrameEqual(contents(spark, out), clean if committed else run.before)
    assert versions(spark, out) in (version, version + 1)
    if not committed:  # files the killed write left behind are referenced by no commit
        orphans = {f.name for f in out.glob("*.parquet")} - referenced_files(spark, out)
        print("killed before its commit;", len(orphans), "unreferenced data files")
    rerun_completes_then_finds_nothing(spark, run.source, out, committed, clean)


def test_driver_dying_just_before_or_after_the_write(spark, tiny_model, cdf_source, tmp_path):
    """The driver dies at the write's edges (in this process: the disk state a SIGKILL leaves there is the
    same, nothing or one complete commit, and no cleanup code runs in between)."""
    outputs, before, version, clean = prepared(spark, cdf_source, tmp_path, ["before", "after"])
    for point, hooks, committed in (
        ("before", WriteHooks(before_write=die), False),
        ("after", WriteHooks(after_write=die), True),
    ):
        out = outputs[point]
        with pytest.raises(DriverDied):
            score_table(spark, job(cdf_source, out), factory=KeywordPredictor, hooks=hooks)
        assert versions(spark, out) == version + int(committed), point
        assertDataFrameEqual(contents(spark, out), clean if committed else before)
        rerun_completes_then_finds_nothing(spark, cdf_source, out, committed, clean)


@pytest.mark.slow
def test_two_jobs_racing_on_one_output_neither_lose_nor_duplicate_rows(spark, tiny_model, cdf_source, tmp_path, jars):
    """Two drivers, each with its own JVM (a job process and this test session), meet at a barrier just
    before the write, so both planned the same change and both write it."""
    source = cdf_source
    out = tmp_path / "out"
    folder = tmp_path / "barrier"
    proc, go = start_job(tmp_path, "other", source, out, f"barrier:{folder}:2", jars)
    with stopped_on_error(proc):
        score_table(spark, job(source, out), factory=KeywordPredictor)
        change_source(spark, source)
        version = versions(spark, out)
    go.touch()
    try:
        here = score_table(
            spark,
            job(source, out),
            factory=KeywordPredictor,
            hooks=WriteHooks(before_write=lambda target: barrier(str(folder), 2)),
        ).as_dict()
    finally:
        log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log[-3000:]
    summaries = [here, json.loads(log.strip().splitlines()[-1])]
    print("concurrent outcome:", sorted((s["status"], s["write_attempts"]) for s in summaries))
    # The change is committed exactly once: one job wins, the other finds the work done (after losing the
    # Delta conflict and re-planning, or by planning after the winner's commit).
    assert sorted(s["status"] for s in summaries) == ["succeeded", "up_to_date"]
    assert versions(spark, out) == version + 1
    result = contents(spark, out)
    assert result.count() == result.select("id").distinct().count() == 6
    assertDataFrameEqual(result, clean_result(spark, source, tmp_path, factory=KeywordPredictor))


def test_a_delta_conflict_is_retried_without_deltas_python_classes(spark, monkeypatch):
    """delta-spark 4.0.0's wheel has no ``delta.exceptions``: pyspark then raises Delta's Java conflict as it
    is, and the retry tells it by its Java class (a real one, made in the session's JVM)."""
    from py4j.protocol import Py4JJavaError
    from spark_sentiment.io import delta as delta_io

    monkeypatch.setattr(delta_io, "CONFLICTS", ())  # as under delta-spark 4.0.0
    conflict = Py4JJavaError("o1.save", spark._jvm.io.delta.exceptions.ConcurrentAppendException("lost a race"))
    other = Py4JJavaError("o1.save", spark._jvm.java.lang.IllegalStateException("not a conflict"))
    assert delta_io.is_conflict(conflict) and not delta_io.is_conflict(other)
    attempts = iter([conflict, None])

    def attempt() -> str:
        error = next(attempts)
        if error is not None:
            raise error
        return "committed"

    assert delta_io.retry_on_conflict("output t", attempt, retries=1) == ("committed", 2)
    with pytest.raises(Py4JJavaError):
        delta_io.retry_on_conflict("output t", lambda: (_ for _ in ()).throw(other), retries=1)
