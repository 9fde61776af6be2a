"""Faults: a dying Python worker, a driver killed at several points, two jobs racing on one output.

Real Spark and Delta throughout; the faults come from :mod:`spark_sentiment.faults` (inert unless its
environment variable or Spark local property is set).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, REPO, TINY, change_source, clean_result, contents, job, versions
from pyspark.testing import assertDataFrameEqual
from spark_sentiment import faults
from spark_sentiment.scoring.job import score_table


def referenced_files(spark, path) -> set[str]:
    return {Path(f).name for f in spark.read.format("delta").load(str(path)).inputFiles()}


def start_job(tmp_path: Path, name: str, source, out, fault: str) -> subprocess.Popen:
    """``jobs/score.py`` in its own process group (the kill takes the whole group: Python and JVM)."""
    args = [PYTHON, "jobs/score.py"]
    for item in (f"input.path={source}", f"output.path={out}", "input.key_columns=[id]", "output.mode=incremental"):
        args += ["--set", item]
    args += ["--set", f"model.uri={TINY}"]
    env = {**os.environ, "SPARK_SENTIMENT_DATA": str(tmp_path / name), faults.ENV: fault}
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def test_python_worker_dying_once_is_retried_to_the_clean_result(spark, tiny_model, cdf_source, tmp_path):
    marker = tmp_path / "worker-died"
    spark.sparkContext.setLocalProperty(faults.PROPERTY, f"worker_exit_once:{marker}")
    try:
        summary = score_table(spark, job(cdf_source, tmp_path / "out", "output.mode=merge"))
    finally:
        spark.sparkContext.setLocalProperty(faults.PROPERTY, None)
    assert marker.exists(), "the fault did not fire"
    assert summary["status"] == "succeeded" and summary["rows_in"] == 6
    assertDataFrameEqual(contents(spark, tmp_path / "out"), clean_result(spark, cdf_source, tmp_path))


def kill_job(tmp_path: Path, source, out, point: str) -> None:
    proc = start_job(tmp_path, f"killed-{point}", source, out, f"kill:{point}")
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == -9, log[-3000:]


@pytest.mark.slow
def test_driver_killed_before_during_after_the_write_leaves_previous_or_complete_table(
    spark, tiny_model, cdf_source, tmp_path
):
    source, out = cdf_source, tmp_path / "out"
    score_table(spark, job(source, out))
    change_source(spark, source)  # each killed job has 2 rows to upsert and 1 to delete
    before, version = contents(spark, out).collect(), versions(spark, out)
    files_before = {p.name for p in out.glob("*.parquet")}

    for point in ("before_write", "during_write"):  # killed before the commit: the previous version, untouched
        kill_job(tmp_path, source, out, point)
        assert versions(spark, out) == version, point
        assertDataFrameEqual(contents(spark, out), before)
    # The during-write kill left data files that no commit references: invisible to readers.
    orphans = {p.name for p in out.glob("*.parquet")} - files_before - referenced_files(spark, out)
    assert orphans, "the kill did not land between the data files and the commit"

    kill_job(tmp_path, source, out, "after_write")  # this rerun completed the work, then died
    assert versions(spark, out) == version + 1
    clean = clean_result(spark, source, tmp_path)
    assertDataFrameEqual(contents(spark, out), clean)

    rerun = score_table(spark, job(source, out))  # and a rerun after that finds nothing left to do
    assert rerun["status"] == "up_to_date"
    assertDataFrameEqual(contents(spark, out), clean)


@pytest.mark.slow
def test_two_jobs_racing_on_one_output_neither_lose_nor_duplicate_rows(spark, tiny_model, cdf_source, tmp_path):
    source = cdf_source
    out = tmp_path / "out"
    score_table(spark, job(source, out))
    change_source(spark, source)
    barrier = f"barrier:{tmp_path / 'barrier'}:2"  # both reach the write before either starts it
    procs = [start_job(tmp_path, f"job{i}", source, out, barrier) for i in range(2)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    summaries = [json.loads(log.strip().splitlines()[-1]) for log in logs]
    outcome = sorted((s["status"], s.get("write_attempts")) for s in summaries)
    print("concurrent outcome:", outcome)
    # One commits; the other loses the Delta conflict, re-plans and finds nothing left to do.
    assert outcome == [("succeeded", 1), ("up_to_date", 2)]
    assert any("Delta commit conflict" in log for log in logs)
    result = contents(spark, out)
    assert result.count() == result.select("id").distinct().count() == 6
    assertDataFrameEqual(result, clean_result(spark, source, tmp_path))
