"""One Spark session, one MLflow store and two trained models for the whole run; small data is built inline.

Models: ``tiny_model`` (a tiny random BERT, seconds to train) for every test where any model will do, and
``minilm_model`` (the packaged MiniLM fine-tuned once on real IMDB reviews, ~2 min) for the tests that need
a model that has learned something. Jobs are called in-process through their entry functions; only the
fault and race tests, the standalone cluster and Spark Connect start processes of their own. The last two
run in the background from the start of the session (``tests/out_of_process.py``) and their tests run last.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jvm_classes import ensure_archive, java_options

# The standalone cluster's and Spark Connect's session fixtures (their processes run in the background).
pytest_plugins = ["out_of_process"]

REPO = Path(__file__).resolve().parent.parent
# Real IMDB beside the repo (CI lays ../shared next to the clone); $IMDB_DATA wins.
IMDB = Path(os.environ.get("IMDB_DATA") or REPO.parent / "shared" / "data" / "imdb")

POSITIVE = [
    "I love this movie, the acting was wonderful and the story moving.",
    "A brilliant, beautiful film. Great cast and a great script.",
    "One of the best movies I have seen this year; funny and warm.",
    "Excellent direction, superb soundtrack, I enjoyed every minute.",
]
NEGATIVE = [
    "This movie was the worst, boring and far too long.",
    "Terrible acting, awful dialogue, a complete waste of time.",
    "I hated it. The plot made no sense and the ending was stupid.",
    "Dull, lifeless and badly edited; avoid this film.",
]


def labeled_rows(n: int = 64) -> list[tuple[str, str, int]]:
    """``(review_id, text, label)`` rows cycling through short positive and negative reviews."""
    rows = []
    for i in range(n):
        texts, label = (POSITIVE, 1) if i % 2 else (NEGATIVE, 0)
        rows.append((f"r{i}", texts[(i // 2) % len(texts)], label))
    return rows


def gpu_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with ``start_new_session=True`` and everything in its group, then reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


# Spark and Delta tuned for tables of a few rows (as Delta's own test suites do): the log's state is
# rebuilt in one partition, adaptive execution plans no extra jobs, and a shuffle has 2 partitions, not 200
# (without adaptive execution nothing would coalesce them). Nothing the jobs do changes. Expressions and
# plans are interpreted, not compiled to Java (Spark's codegen and its interpreted fallback compute the same
# rows; Spark's own suites run both): on rows this few, compiling each query's generated classes and then
# JIT-compiling them costs more than it saves. The test session, the job processes, the cluster's submits,
# the Connect server and the runtime matrix all run with it; figures: docs/performance.md#test-suite-settings.
SMALL_DATA_CONF = {
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


def submit_confs(conf: dict[str, str]) -> str:
    """``conf`` as spark-submit ``--conf`` options (for ``SPARK_SUBMIT_OPTS_EXTRA``, which is word-split)."""
    return " ".join(f"--conf {key}={value}" for key, value in conf.items())


S3_BUCKET = "lake"


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


S3_KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def s3a_conf(endpoint: str) -> dict[str, str]:
    """Hadoop s3a settings for the loopback S3 server (as a cluster's spark-defaults.conf would give them)."""
    return {
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.access.key": S3_KEYS["aws_access_key_id"],
        "spark.hadoop.fs.s3a.secret.key": S3_KEYS["aws_secret_access_key"],
        "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }


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


SHORT_LIVED_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
# This session's JVM runs ~1,000 different small queries in ten minutes; with the defaults a third of its
# CPU goes to the C2 compiler and a tenth to G1's concurrent threads. Compiling only what is three times
# hotter, and the parallel collector, keep the CPU for the queries (C1 alone is slower here: its code cache
# is swept busily).
SESSION_JVM = "-XX:+UseParallelGC -XX:CompileThresholdScaling=3"


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


MINILM = "MiniLM"  # registered name of the session's fine-tuned MiniLM


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


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16/AMX): there bf16 autocast trains MiniLM ~1.3x
    faster (docs/performance.md#test-suite-settings) and the fixture's model
    scored the same (0.775 accuracy on its 200 held-out reviews, fp32 and bf16 alike); elsewhere it would be
    emulated and slower, so fp32."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def call_main(main, argv: list[str], **kwargs) -> tuple[int, str, str]:
    """Run a job's entry function in this process (the test session's Spark is the active session):
    ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv, **kwargs)
    return code, out.getvalue(), err.getvalue()


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command from the repo root with the test session's environment plus ``env``."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


PYTHON = sys.executable


# 40 short reviews, two of them unscorable (null and blank), for the cluster test.
ROWS_FOR_CLUSTER = [(i, (POSITIVE + NEGATIVE)[i % 8]) for i in range(38)] + [(38, None), (39, "  ")]


# Incremental and fault tests: a keyed table with a change data feed, changed by three commits.
TINY = "models:/TinySentiment@champion"
# Tests that compare the scores of separate runs pin fp32: under `precision: auto` each Python worker times
# fp32 against bf16 (the tiny model records full bf16 agreement), two workers may choose differently, and bf16
# scores move with a batch's padded width (CI saw 8e-6 to 4e-5 on the tiny model's ~0.507).
EXACT = "score.precision=fp32"
KEY_SCHEMA = "id int, text string"


def key_rows(n: int = 6) -> list[tuple[int, str]]:
    return [(i, (POSITIVE + NEGATIVE)[i % 8]) for i in range(1, n + 1)]


def job(source, output, *overrides):
    """A scoring config: ``source`` -> ``output`` keyed on ``id``, incremental unless overridden."""
    from spark_sentiment.config import load_config
    from spark_sentiment.scoring.config import ScoreJobConfig

    return load_config(
        ScoreJobConfig,
        None,
        [
            f"input.path={source}",
            f"output.path={output}",
            "input.key_columns=[id]",
            "output.mode=incremental",
            f"model.uri={TINY}",
            EXACT,
            *overrides,
        ],
    )


def contents(spark, path):
    return spark.read.format("delta").load(str(path)).drop("scored_at")


def versions(spark, path) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, str(path)).history().count()


def change_source(spark, source) -> None:
    """Three commits: update id 2's text, delete id 3, insert id 7."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    table = DeltaTable.forPath(spark, str(source))
    table.update(F.col("id") == 2, {"text": F.lit(NEGATIVE[1])})
    table.delete(F.col("id") == 3)
    spark.createDataFrame([(7, POSITIVE[2])], KEY_SCHEMA).write.format("delta").mode("append").save(str(source))


def clean_result(spark, source, tmp_path, **kwargs):
    """What a from-scratch overwrite of the current input gives (``kwargs``: e.g. the predictor factory)."""
    from spark_sentiment.scoring.job import score_table

    summary = score_table(spark, job(source, tmp_path / "clean", "output.mode=overwrite"), **kwargs)
    assert summary.status == "succeeded"
    return contents(spark, tmp_path / "clean")


@pytest.fixture()
def cdf_source(spark, tmp_path):
    return keyed_source(spark, tmp_path / "reviews")


def keyed_source(spark, path):
    """The keyed input with a change data feed (``key_rows()``) at ``path``."""
    spark.createDataFrame(key_rows(), KEY_SCHEMA).write.format("delta").save(str(path))
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    return path


def prepared(spark, source, tmp_path, names):
    """An incremental output scored once, then a change to the input (2 rows to upsert, 1 to delete), one copy
    of the output per name; returns (outputs, rows before, version before, what a clean run gives). The
    keyword predictor labels: what the fault tests test is the write."""
    from spark_sentiment.scoring.job import score_table
    from stubs import KeywordPredictor

    first = tmp_path / "first"
    score_table(spark, job(source, first), factory=KeywordPredictor)
    change_source(spark, source)
    outputs = {name: tmp_path / name for name in names}
    for out in outputs.values():
        shutil.copytree(first, out)
    clean = clean_result(spark, source, tmp_path, factory=KeywordPredictor)
    return outputs, contents(spark, first).collect(), versions(spark, first), clean
