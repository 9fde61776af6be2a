"""End to end on a real Spark standalone cluster started here: a master and two workers on 127.0.0.1.

The job is submitted with spark-submit.sh; executors are separate JVM/Python processes and receive the
model package through Spark (SparkFiles), which the test checks in the workers' own work folders.
The cluster's catalog (a Hive metastore and warehouse given as confs, as spark-defaults.conf or
hive-site.xml would) is the one the job uses. A second spark-submit (a new session, local master, same
catalog confs) then queries the scored table through that catalog with SQL.

For hosts that lack the project's venv, a packed environment (venv-pack) is shipped with ``--archives``
and the executors run ``./env/bin/python`` from it while the driver keeps its own interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest
from conftest import ROWS_FOR_CLUSTER, SMALL_DATA_CONF, free_port, run_cli, submit_confs, wait_for_port

pytestmark = pytest.mark.slow
SPARK_CLASS = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
# Two one-core executors; Delta and Spark tuned for a table of 40 rows, as in the test session (otherwise
# Delta rebuilds each log snapshot in 50 tasks on cold executors).
EXECUTORS = "--conf spark.executor.memory=1g --conf spark.cores.max=2 " + submit_confs(SMALL_DATA_CONF)


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """Master + 2 one-core workers, shared by this module's tests; every process is stopped by its pid."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    port, ui = free_port(), free_port()
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        out = open(logs / f"{name}.log", "w")
        procs.append(subprocess.Popen([SPARK_CLASS, *args], env=env, stdout=out, stderr=subprocess.STDOUT))

    try:
        start(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(ui),
        )
        wait_for_port(port)
        workers = []
        for i in range(2):
            work = tmp_path / f"worker{i}"
            workers.append(work)
            start(
                f"worker{i}",
                "org.apache.spark.deploy.worker.Worker",
                f"spark://127.0.0.1:{port}",
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "2g",
                "--work-dir",
                str(work),
                "--webui-port",
                str(free_port()),
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = (logs / "master.log").read_text()
            if text.count("Registering worker") >= 2:
                break
            time.sleep(0.5)
        else:
            raise TimeoutError("workers did not register:\n" + (logs / "master.log").read_text()[-3000:])
        yield f"spark://127.0.0.1:{port}", workers
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_score_on_standalone_cluster_then_query_from_new_session(spark, tiny_model, standalone_cluster, tmp_path):
    master, workers = standalone_cluster
    source = str(tmp_path / "reviews")
    spark.createDataFrame(ROWS_FOR_CLUSTER, "id int, body string").write.format("delta").save(source)
    data = tmp_path / "job-data"  # the jobs' local state; their catalog is the "cluster's" below
    # The cluster's own metastore and warehouse, as spark-defaults.conf or hive-site.xml would give them:
    # the job must use them, not fill in a local catalog of its own.
    foreign = tmp_path / "cluster-catalog"
    catalog = (
        "--conf spark.sql.catalogImplementation=hive "
        f"--conf spark.sql.warehouse.dir={foreign / 'warehouse'} "
        "--conf spark.hadoop.javax.jdo.option.ConnectionURL="
        f"jdbc:derby:;databaseName={foreign / 'metastore'};create=true"
    )
    env = {
        "SPARK_MASTER": master,
        "SPARK_SENTIMENT_DATA": str(data),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_SUBMIT_OPTS_EXTRA": f"{EXECUTORS} {catalog}",
    }
    result = run_cli(
        [
            "./spark-submit.sh",
            "jobs/score.py",
            "--set",
            f"input.path={source}",
            "--set",
            "output.table=cluster_scored",
            "--set",
            "input.text_columns=[body]",
            "--set",
            "input.key_columns=[id]",
            "--set",
            "output.mode=merge",
            "--set",
            "model.uri=models:/TinySentiment@champion",
            "--set",
            "score.partitions=4",
        ],
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["rows_in"], summary["rows_scored"], summary["null_texts"]) == (40, 38, 2)
    assert summary["output"] == "table cluster_scored"
    # The table and its metastore entry are in the cluster's catalog; no local catalog was made.
    assert (foreign / "warehouse" / "cluster_scored" / "_delta_log").is_dir()
    assert (foreign / "metastore").is_dir()
    assert not (data / "warehouse").exists() and not (data / "metastore_db").exists()

    # Executors ran in the workers' own folders, and each one fetched the model package from Spark.
    executor_dirs = [d for w in workers for d in w.glob("app-*/*") if d.is_dir()]
    assert len(executor_dirs) >= 2, executor_dirs
    shipped = [
        d for d in executor_dirs if any(p.name.endswith(".zip") and "TinySentiment" in p.name for p in d.iterdir())
    ]
    assert len(shipped) >= 2, [sorted(p.name for p in d.iterdir()) for d in executor_dirs]

    query = run_cli(
        [
            "./spark-submit.sh",
            "jobs/sql.py",
            "SELECT body_sentiment AS label, count(*) AS n FROM cluster_scored GROUP BY 1 ORDER BY 1",
        ],
        env={
            "SPARK_SENTIMENT_DATA": str(data),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_SUBMIT_OPTS_EXTRA": f"{submit_confs(SMALL_DATA_CONF)} {catalog}",
        },
    )
    assert query.returncode == 0, query.stderr[-4000:]
    rows = [json.loads(line) for line in query.stdout.strip().splitlines() if line.startswith("{")]
    assert sum(r["n"] for r in rows) == 40
    assert {r["label"] for r in rows} <= {None, "NEGATIVE", "POSITIVE"}
    assert sum(r["n"] for r in rows if r["label"] is None) == 2


@pytest.fixture(scope="module")
def packed_env(tmp_path_factory) -> Path:
    """What a cluster without the venv gets: a venv-pack archive of a fresh venv holding the executor-side
    dependencies of the keyword predictor (numpy, pandas, pyarrow at the versions the driver runs; the
    project itself travels as --py-files). A real model adds torch and transformers (docs/deployment.md)."""
    import numpy
    import pandas
    import pyarrow
    import venv_pack

    root = tmp_path_factory.mktemp("packed-env")
    prefix = root / "venv"
    # No pip of its own (ensurepip takes seconds): this venv's pip installs into it (pip --python).
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    pins = [f"numpy=={numpy.__version__}", f"pandas=={pandas.__version__}", f"pyarrow=={pyarrow.__version__}"]
    pip = [sys.executable, "-m", "pip", "--python", str(prefix / "bin" / "python"), "install", "-q", *pins]
    pip.append("--disable-pip-version-check")
    subprocess.run(pip, check=True, timeout=600)
    archive = root / "env.tar.gz"
    venv_pack.pack(prefix=str(prefix), output=str(archive), compress_level=1)
    return archive


def test_executors_run_a_shipped_python_environment(spark, tiny_model, standalone_cluster, packed_env, tmp_path):
    master, workers = standalone_cluster
    source = str(tmp_path / "reviews")
    spark.createDataFrame(ROWS_FOR_CLUSTER, "id int, body string").write.format("delta").save(source)
    records = tmp_path / "interpreters"
    records.mkdir()
    env = {
        "SPARK_MASTER": master,
        "SPARK_SENTIMENT_DATA": str(tmp_path / "job-data"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "EXECUTOR_ENV": str(packed_env),
        "PYTHONPATH": str(Path(__file__).parent),  # the driver imports tests/stubs.py (executors get it pickled)
        "SPARK_SUBMIT_OPTS_EXTRA": EXECUTORS,
    }
    sets = [f"input.path={source}", f"output.path={tmp_path / 'out'}", "input.text_columns=[body]"]
    sets += ["input.key_columns=[id]", "model.uri=models:/TinySentiment@champion", "score.partitions=4"]
    args = ["./spark-submit.sh", "tests/env_job.py", str(records), *sum((["--set", s] for s in sets), [])]
    result = run_cli(args, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["rows_in"], summary["rows_scored"], summary["null_texts"]) == (40, 38, 2)

    # Every Python worker ran the unpacked archive's interpreter, inside an executor's work folder, and
    # imported pandas from it; none ran the project's venv.
    seen = [json.loads(p.read_text()) for p in records.glob("*.json")]
    assert len(seen) >= 2, seen
    work = [str(w.resolve()) for w in workers]
    for record in seen:
        assert record["prefix"].endswith("/env") and any(record["prefix"].startswith(w) for w in work), record
        assert record["pandas"].startswith(record["prefix"]) and not record["pandas"].startswith(sys.prefix)
