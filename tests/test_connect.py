"""The jobs as Spark Connect clients.

A local Spark Connect server (the ``SparkConnectServer`` that ships in pyspark's jars, with Delta from the
same resolver as the jobs' sessions) owns Spark, Delta and the catalog; the scoring job (both engines), the
SQL function and the evaluation job run one after another in a plain Python process whose only Spark is
``SPARK_REMOTE`` (``tests/connect_client.py``, as a notebook attached to a Connect server would). A
Connect client has no JVM, no SparkContext and no RDDs: paths are checked by the server's own listing, Delta
is reached through SQL, and the model package reaches the executors with ``addArtifacts(archive=True)``.

The server and the client run in the background from the start of the session (``connect_runs`` in
``tests/out_of_process.py``); these tests run last and check what they did against a classic session.
"""

from __future__ import annotations

import json

import pytest
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.config import load_config
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import score_table

pytestmark = pytest.mark.slow


def succeeded(step: dict) -> dict:
    assert step["code"] == 0, (step["stdout"] + step["stderr"])[-4000:]
    return json.loads(step["stdout"].splitlines()[-1])


def test_scoring_job_both_engines_and_sql_function_over_spark_connect(spark, connect_runs):
    results, output, tmp = connect_runs.steps.result(), connect_runs.output, connect_runs.tmp
    # What a classic session labels: the reference for every Connect path.
    expected = tmp / "classic"
    overrides = [*connect_runs.common, f"output.path={expected}", "output.mode=merge"]
    score_table(spark, load_config(ScoreJobConfig, None, overrides))
    want = spark.read.format("delta").load(str(expected)).select("id", "body_sentiment")
    for engine, version in (("native", 0), ("mlflow", 1)):
        summary = succeeded(results[engine])
        assert (summary["status"], summary["rows_in"], summary["rows_scored"]) == ("succeeded", 40, 38), summary
        assert (summary["engine"], summary["output_version"]) == (engine, version), summary
        # each version of the output holds the classic labels: no row duplicated or lost by the MERGE
        got = spark.read.format("delta").option("versionAsOf", version).load(str(output))
        assertDataFrameEqual(got.select("id", "body_sentiment"), want)

    refused = results["refused"]
    assert refused["code"] == 2, refused["stderr"][-2000:]
    assert "report.summary_path" in refused["stderr"].splitlines()[-1] and "Spark Connect" in refused["stderr"]
    assert not (tmp / "never").exists() and not (tmp / "summary.json").exists()

    sql = results["sql"]
    assert sql["code"] == 0, sql["stderr"][-4000:]
    lines = sql["stdout"].strip().splitlines()[:-1]  # the last line is the summary
    rows = [json.loads(line) for line in lines if line.startswith("{")]
    assertDataFrameEqual(spark.createDataFrame(rows, "id int, body_sentiment string"), want)


def test_evaluation_job_over_spark_connect(connect_runs):
    summary = succeeded(connect_runs.steps.result()["evaluate"])
    assert (summary["status"], summary["rows"]) == ("same_version", 64), summary
    assert 0 <= summary["candidate"]["accuracy"] <= 1 and "f1" in summary["candidate"], summary
