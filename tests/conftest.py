"""One Spark session, one MLflow store and two trained models for the whole run; small data is built inline.

Models: ``tiny_model`` (a tiny random BERT, seconds to train) for every test where any model will do, and
``minilm_model`` (the packaged MiniLM fine-tuned once on real IMDB reviews, ~2 min) for the tests that need
a model that has learned something. Jobs are called in-process through their entry functions; only the
fault and race tests, the standalone cluster and Spark Connect start processes of their own. The last two
run in the background from the start of the session (``tests/out_of_process.py``) and their tests run last.
The helpers the tests share (inline data, processes, Spark settings, in-process job calls) are in
``tests/support/``; this file holds the fixtures.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from jvm_classes import ensure_archive, java_options
from support.commands import call_main
from support.data import IMDB, MINILM, labeled_rows
from support.machine import gpu_available
from support.processes import PYTHON, free_port, wait_for_port
from support.spark_conf import S3_BUCKET, S3_KEYS, SESSION_JVM, SHORT_LIVED_JVM, SMALL_DATA_CONF, s3a_conf
from support.tables import keyed_source

# The standalone cluster's and Spark Connect's session fixtures (their processes run in the background), and
# the runtime matrix's options, fixtures and table (make test-runtimes).
pytest_plugins = ["out_of_process", "runtime_matrix"]


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    # Under pytest-xdist (PYTEST_ARGS="-n 4 --dist loadgroup") every worker has its own session fixtures: the
    # tests of the fine-tuned MiniLM share one worker, so it is trained once per run, not once per worker.
    for item in items:
        if "minilm_model" in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group("minilm"))
    # The tests that check the background processes run last, in the order those processes run.
    from out_of_process import FIXTURES

    items.sort(key=lambda item: max((i for i, f in enumerate(FIXTURES) if f in item.fixturenames), default=-1))
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def out_of_process_started(request) -> None:
    """Starts the background processes of the selected tests that check them (``tests/out_of_process.py``)
    before the first test, so that they run while the in-process tests do. The MiniLM fine-tune, if a
    selected test needs it, comes first: its trainer's threads wait for each other at every step, which the
    background processes' load would stall (docs/performance.md#test-suite-settings). Under pytest-xdist a
    worker does not know which tests it will get: there each fixture starts when its first test asks for it."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    from out_of_process import FIXTURES

    selected = {name for item in request.session.items for name in item.fixturenames}
    if not selected & set(FIXTURES):
        return
    for name in ("minilm_model", *FIXTURES):
        if name in selected:
            try:
                request.getfixturevalue(name)
            except (Exception, pytest.skip.Exception):
                # pytest keeps what the fixture raised (an error, or a skip such as no IMDB beside the repo)
                # and raises it again in each test that uses the fixture: those tests report it, others run.
                pass


@pytest.fixture(scope="session")
def project_dir(tmp_path_factory) -> Path:
    """Data dir and MLflow store of the test session (jobs started by tests get their own data dirs)."""
    base = tmp_path_factory.mktemp("project")
    os.environ["SPARK_SENTIMENT_DATA"] = str(base)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{base}/mlflow/mlflow.db"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return base


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> str:
    """A real S3 API on loopback: moto's server mode (pure Python from PyPI, no Docker or binary needed;
    it speaks the S3 REST protocol that Hadoop's s3a client uses). Stopped by its pid at the end."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("s3") / "moto.log", "w")
    proc = subprocess.Popen([PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        wait_for_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS)
        client.create_bucket(Bucket=S3_BUCKET)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def spark(project_dir, s3_endpoint, tmp_path_factory):
    import stubs
    from filelock import FileLock
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(stubs)  # workers cannot import tests/; the factories travel by value

    # Every JVM of the run maps its classes from one class-data archive (tests/jvm_classes.py); options the
    # caller gave in JAVA_TOOL_OPTIONS come last and win.
    given = os.environ.get("JAVA_TOOL_OPTIONS", "")
    # Workers of one xdist run start their JVMs one at a time: Spark's Ivy resolution of the packages writes
    # a shared cache (~/.ivy2*), which concurrent resolutions can corrupt (and the archive is built once).
    with FileLock(str(tmp_path_factory.getbasetemp().parent / "spark-start.lock")):
        classes = java_options(ensure_archive())
        os.environ["JAVA_TOOL_OPTIONS"] = f"{classes} {SESSION_JVM} {given}".strip()
        session = start_session(project_dir, s3_endpoint)
    # Every JVM the tests start from now on (job processes, spark-submit drivers, the cluster's master,
    # workers and executors, the Connect server) lives for seconds to a minute: the C1 JIT alone and the
    # serial collector spend less of the two cores on compiling and collecting than the defaults.
    os.environ["JAVA_TOOL_OPTIONS"] = f"{classes} {SHORT_LIVED_JVM} {given}".strip()
    # Their scratch folders (shipped files, shuffle blocks) go under this run's pytest folder, not /tmp: a
    # process the tests SIGKILL leaves its folder behind, and pytest keeps only the last few runs.
    os.environ.setdefault("SPARK_LOCAL_DIRS", str(tmp_path_factory.mktemp("spark-local")))
    yield session
    session.stop()


def start_session(project_dir: Path, s3_endpoint: str):
    from spark_sentiment.core.session import get_spark
    from spark_sentiment.core.spark_conf import hadoop_aws_maven_coordinate

    return get_spark(
        "spark-sentiment-tests",
        conf={
            "spark.master": "local[2,2]",  # a failed task is retried once, as on a cluster
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            **SMALL_DATA_CONF,
            # s3a:// through hadoop-aws matching pyspark's Hadoop, resolved from Maven Central like Delta.
            "spark.jars.packages": hadoop_aws_maven_coordinate(),
            **s3a_conf(s3_endpoint),
        },
        base_dir=project_dir,
    )


@pytest.fixture(scope="session")
def tiny_model(spark, project_dir, tmp_path_factory) -> dict:
    """A tiny random-init BERT (real MiniLM vocabulary) trained for a few steps and registered."""
    from spark_sentiment.config import load_config
    from spark_sentiment.training.config import TrainJobConfig
    from spark_sentiment.training.trainer import train_and_register

    source = tmp_path_factory.mktemp("labeled") / "reviews"
    spark.createDataFrame(labeled_rows(64), "review_id string, text string, label int").write.format("delta").save(
        str(source)
    )
    cfg = load_config(
        TrainJobConfig,
        None,
        [
            f"data.path={source}",
            "data.train_rows=48",
            "data.eval_rows=16",
            "model.base=tiny-random",
            "train.max_steps=6",
            "train.batch_size=8",
            "train.max_length=64",
            "registry.name=TinySentiment",
        ],
    )
    return train_and_register(spark, cfg)


@pytest.fixture(scope="session")
def minilm_model(spark) -> dict:
    """The packaged MiniLM fine-tuned on 1,000 real IMDB reviews (1 epoch, 96 tokens), through the training
    job's entry function (train.precision auto: the faster of fp32 and bf16 autocast here); eval accuracy
    0.775 on its 200 held-out reviews when measured."""
    from spark_sentiment.training.job import main

    if not (IMDB / "train.parquet").exists():
        pytest.skip("needs IMDB parquet beside the repo")
    args = [f"data.path={IMDB}", "data.train_rows=1000", "data.eval_rows=200", "train.epochs=1"]
    args += ["train.max_length=96", "train.learning_rate=1e-4", "train.batch_size=16", f"registry.name={MINILM}"]
    code, out, err = call_main(main, sum((["--set", a] for a in args), []))
    assert code == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture()
def cdf_source(spark, tmp_path):
    return keyed_source(spark, tmp_path / "reviews")
