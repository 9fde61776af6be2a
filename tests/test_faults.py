"""Faults: a dying Python worker, a driver killed at several points, two jobs racing on one output.

Real Spark and Delta throughout. The faults are the tests' own: a predictor factory that makes a worker
exit, and write hooks (``tests/fault_job.py``) that SIGKILL a job's process group or hold two jobs at a
barrier. Every test asserts an invariant -- the output is the previous version or the complete new one,
no row is lost or duplicated, one change is committed once -- not one particular schedule.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, REPO, TINY, change_source, clean_result, contents, job, versions
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.scoring.job import score_table
from stubs import ExitOnceFactory


def referenced_files(spark, path) -> set[str]:
    return {Path(f).name for f in spark.read.format("delta").load(str(path)).inputFiles()}


@pytest.fixture(scope="module")
def resolved_jars(spark) -> str:
    """The Delta jars the test session already resolved, handed to the jobs' JVMs (no Ivy round per job)."""
    jars = spark.sparkContext.getConf().get("spark.jars", "")
    return jars if "delta-spark" in jars else ""


def start_job(tmp_path: Path, name: str, source, out, fault: str, jars: str) -> subprocess.Popen:
    """``tests/fault_job.py`` in its own process group (the kill takes the whole group: Python and JVM)."""
    sets = [f"input.path={source}", f"output.path={out}", "input.key_columns=[id]", "output.mode=incremental"]
    conf = {"spark.ui.enabled": "false", **({"spark.jars": jars} if jars else {})}
    sets += [f"model.uri={TINY}", f"spark.conf={json.dumps(conf)}"]  # JSON is YAML
    args = [PYTHON, "tests/fault_job.py", fault, *sum((["--set", s] for s in sets), [])]
    env = {**os.environ, "SPARK_SENTIMENT_DATA": str(tmp_path / name), "PYTHONPATH": str(REPO / "tests")}
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def test_python_worker_dying_once_is_retried_to_the_clean_result(spark, tiny_model, cdf_source, tmp_path):
    marker = tmp_path / "worker-died"
    factory = ExitOnceFactory(str(marker))
    summary = score_table(spark, job(cdf_source, tmp_path / "out", "output.mode=merge"), factory=factory)
    assert marker.exists(), "the fault did not fire"
    assert summary.status == "succeeded" and summary.rows_in == 6
    assertDataFrameEqual(contents(spark, tmp_path / "out"), clean_result(spark, cdf_source, tmp_path))


@pytest.mark.slow
def test_driver_killed_before_during_after_the_write_leaves_previous_or_complete_table(
    spark, tiny_model, cdf_source, tmp_path, resolved_jars
):
    source, first = cdf_source, tmp_path / "first"
    score_table(spark, job(source, first))
    change_source(spark, source)  # each killed job has 2 rows to upsert and 1 to delete
    before, version = contents(spark, first).collect(), versions(spark, first)
    clean = clean_result(spark, source, tmp_path)
    points = ("before_write", "during_write", "after_write")
    outputs = {point: tmp_path / point for point in points}
    for out in outputs.values():  # each kill starts from its own copy of the same table
        shutil.copytree(first, out)
    procs = {p: start_job(tmp_path, p, source, outputs[p], f"kill:{p}", resolved_jars) for p in points}
    logs = {p: proc.communicate(timeout=600)[0] for p, proc in procs.items()}
    for point, proc in procs.items():
        assert proc.returncode == -9, f"{point}: {logs[point][-3000:]}"

    committed = {p: versions(spark, outputs[p]) > version for p in points}
    for point in points:
        out = outputs[point]
        # Readers see the previous version or the complete new one, never anything in between.
        assertDataFrameEqual(contents(spark, out), clean if committed[point] else before)
        assert versions(spark, out) in (version, version + 1)
        if not committed[point]:  # files the killed write left behind are referenced by no commit
            orphans = {f.name for f in out.glob("*.parquet")} - referenced_files(spark, out)
            print(point, "killed before its commit;", len(orphans), "unreferenced data files")
    assert committed == {"before_write": False, "during_write": committed["during_write"], "after_write": True}

    for point in points:  # a rerun completes what a killed run left, and a second finds nothing to do
        rerun = score_table(spark, job(source, outputs[point]))
        assert rerun.status == ("up_to_date" if committed[point] else "succeeded"), point
        assertDataFrameEqual(contents(spark, outputs[point]), clean)
        assert score_table(spark, job(source, outputs[point])).status == "up_to_date"


@pytest.mark.slow
def test_two_jobs_racing_on_one_output_neither_lose_nor_duplicate_rows(
    spark, tiny_model, cdf_source, tmp_path, resolved_jars
):
    source = cdf_source
    out = tmp_path / "out"
    score_table(spark, job(source, out))
    change_source(spark, source)
    version = versions(spark, out)
    barrier = f"barrier:{tmp_path / 'barrier'}:2"  # both reach the write before either starts it
    procs = [start_job(tmp_path, f"job{i}", source, out, barrier, resolved_jars) for i in range(2)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    summaries = [json.loads(log.strip().splitlines()[-1]) for log in logs]
    print("concurrent outcome:", sorted((s["status"], s["write_attempts"]) for s in summaries))
    # The change is committed exactly once: one job wins, the other finds the work done (after losing the
    # Delta conflict and re-planning, or by planning after the winner's commit).
    assert sorted(s["status"] for s in summaries) == ["succeeded", "up_to_date"]
    assert versions(spark, out) == version + 1
    result = contents(spark, out)
    assert result.count() == result.select("id").distinct().count() == 6
    assertDataFrameEqual(result, clean_result(spark, source, tmp_path))
