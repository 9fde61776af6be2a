"""The jobs as Spark Connect clients.

A local Spark Connect server (the ``SparkConnectServer`` that ships in pyspark's jars, with Delta from the
same resolver as the jobs' sessions) owns Spark, Delta and the catalog; the scoring job (both engines), the
SQL function and the evaluation job run one after another in a plain Python process whose only Spark is
``SPARK_REMOTE`` (``tests/connect_client.py``, as a notebook attached to a Connect server would). A
Connect client has no JVM, no SparkContext and no RDDs: paths are checked by the server's own listing, Delta
is reached through SQL, and the model package reaches the executors with ``addArtifacts(archive=True)``.
The server is stopped by its pid.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyspark
import pytest
from conftest import PYTHON, ROWS_FOR_CLUSTER, SMALL_DATA_CONF, TINY, free_port, run_cli, wait_for_port
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.config import load_config
from spark_sentiment.core.spark_conf import DELTA_CONF, delta_maven_coordinate
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import score_table

pytestmark = pytest.mark.slow
SPARK_SUBMIT = str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory, project_dir):
    """A local Spark Connect server with Delta (its warehouse and metastore in a folder of its own; its Python
    workers run this interpreter; MLflow reachable as for the clients), as a function that waits until it
    listens and returns ``sc://127.0.0.1:<port>``: the caller does its own preparation while the server's
    JVM starts."""
    home = tmp_path_factory.mktemp("connect-server")
    port = free_port()
    confs = {
        **DELTA_CONF,
        **SMALL_DATA_CONF,
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": str(home / "warehouse"),
        "spark.sql.shuffle.partitions": "2",
    }
    command = [SPARK_SUBMIT, "--master", "local[2]", "--packages", delta_maven_coordinate()]
    command += [arg for key, value in confs.items() for arg in ("--conf", f"{key}={value}")]
    command += ["--class", "org.apache.spark.sql.connect.service.SparkConnectServer", "spark-internal"]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": PYTHON}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)

    def url() -> str:
        try:
            wait_for_port(port, timeout=180)
        except TimeoutError:
            raise TimeoutError((home / "server.log").read_text()[-4000:]) from None
        return f"sc://127.0.0.1:{port}"

    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


@pytest.fixture(scope="module")
def connect_jobs(spark, tiny_model, connect_server, tmp_path_factory) -> dict:
    """The scoring job (native engine, then mlflow engine merging into its output, then a run the client must
    refuse), the SQL function and the evaluation job, run by one Connect client process
    (``tests/connect_client.py``). Returns its step results by name, the paths, and what a classic session
    labels (the reference for every Connect path)."""
    from conftest import labeled_rows

    tmp = tmp_path_factory.mktemp("connect-jobs")
    source, labeled = str(tmp / "reviews"), str(tmp / "labeled")
    spark.createDataFrame(ROWS_FOR_CLUSTER, "id int, body string").write.format("delta").save(source)
    spark.createDataFrame(labeled_rows(64), "review_id string, text string, label int").write.format("delta").save(
        labeled
    )
    common = (
        f"input.path={source}",
        "input.text_columns=[body]",
        "input.key_columns=[id]",
        f"model.uri={TINY}",
        "score.precision=fp32",
        "score.partitions=2",
    )
    expected = tmp / "classic"
    score_table(spark, load_config(ScoreJobConfig, None, [*common, f"output.path={expected}", "output.mode=merge"]))
    output = tmp / "connect"
    steps = {
        # The native engine creates the output; the mlflow engine then merges into it (Delta's MERGE INTO over
        # Connect): the same keys are upserted with the same labels.
        engine: ["score", sets(*common, f"output.path={output}", "output.mode=merge", f"engine={engine}")]
        for engine in ("native", "mlflow")
    }
    # a summary file cannot be written from a Connect client: refused before any work
    report = f"report.summary_path={tmp / 'summary.json'}"
    steps["refused"] = ["score", sets(*common, f"output.path={tmp / 'never'}", report)]
    query = f"SELECT id, sentiment(body).label AS body_sentiment FROM delta.`{source}`"
    steps["sql"] = ["sql", ["--function", TINY, query]]
    steps["evaluate"] = [
        "evaluate",
        sets(
            f"input.path={labeled}",
            "input.rows=null",
            f"models.candidate={TINY}",
            f"models.champion={TINY}",
            "promotion.promote=false",
            "score.precision=fp32",
        ),
    ]
    plan = tmp / "steps.json"
    plan.write_text(json.dumps(list(steps.values())))
    env = {"SPARK_REMOTE": connect_server(), "SPARK_SENTIMENT_DATA": str(tmp / "client")}
    result = run_cli([PYTHON, "tests/connect_client.py", str(plan)], env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    results = dict(zip(steps, json.loads(result.stdout.splitlines()[-1])))
    want = spark.read.format("delta").load(str(expected)).select("id", "body_sentiment")
    return {"results": results, "output": output, "tmp": tmp, "want": want}


def succeeded(step: dict) -> dict:
    assert step["code"] == 0, (step["stdout"] + step["stderr"])[-4000:]
    return json.loads(step["stdout"].splitlines()[-1])


def test_scoring_job_both_engines_and_sql_function_over_spark_connect(spark, connect_jobs):
    results, output, tmp, want = (connect_jobs[k] for k in ("results", "output", "tmp", "want"))
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
    rows = [json.loads(line) for line in sql["stdout"].splitlines() if line.startswith("{")]
    assertDataFrameEqual(spark.createDataFrame(rows, "id int, body_sentiment string"), want)


def test_evaluation_job_over_spark_connect(connect_jobs):
    summary = succeeded(connect_jobs["results"]["evaluate"])
    assert (summary["status"], summary["rows"]) == ("same_version", 64), summary
    assert 0 <= summary["candidate"]["accuracy"] <= 1 and "f1" in summary["candidate"], summary
