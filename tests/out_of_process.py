"""The out-of-process tests' processes: started at the beginning of the session, checked at its end.

A standalone cluster with its submits (``tests/test_cluster.py``), a Spark Connect server with its client
(``tests/test_connect.py``) and a scoring job killed during its write (``tests/test_faults.py``) are
processes of their own: cold JVMs and Python workers, ~3 minutes of wall time when run alone, much of it
on one busy thread. The in-process tests leave about a quarter of the two
cores idle (a driver plans a small query on one thread), so these processes run beside them: a session
fixture prepares their inputs with the test session's Spark, one background thread then starts the
processes one after another and keeps what they print, and the tests that check them run last (``conftest``
orders them so) and wait for those results.

They share the test session's MLflow store (the tiny model, whose alias no test moves) and nothing else.
Every process gets the environment the session had when the fixture ran (not what a test may set
meanwhile) and a working directory of its own, and is stopped by its pid when it is done or when the
session ends, finished or not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyspark
import pytest
from support.commands import sets
from support.data import EXACT, KEY_SCHEMA, REPO, ROWS_FOR_CLUSTER, TINY, key_rows, labeled_rows
from support.processes import PYTHON, free_port, kill_group, port_open
from support.spark_conf import SMALL_DATA_CONF, submit_confs
from support.tables import keyed_source, prepared

T = TypeVar("T")
SPARK_BIN = Path(pyspark.__file__).parent / "bin"
# The fixtures whose processes run in the background; conftest starts them first and orders their tests last.
FIXTURES = ("connect_runs", "cluster_runs", "killed_run", "killed_stream")


class Background:
    """Runs functions one after another on a thread of its own. The processes they start with :meth:`start`
    or :meth:`run` get the environment given here (plus their own) and are killed with their process group
    at :meth:`close` if they are still running."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="out-of-process")
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args) -> Future[T]:
        return self._pool.submit(fn, *args)

    def start(self, args: list[str], cwd: Path = REPO, env: dict[str, str] | None = None, log: Path | None = None):
        """A process in a new process group; its output goes to ``log``, else it is captured (text)."""
        with self._lock:  # none starts once close() has begun
            if self._closed:
                raise RuntimeError(f"the test session has ended; not starting {args[0]}")
            out = open(log, "w") if log else subprocess.PIPE
            try:
                proc = subprocess.Popen(
                    args,
                    cwd=cwd,
                    env={**self.env, **(env or {})},
                    stdout=out,
                    stderr=subprocess.STDOUT if log else subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            finally:
                if log:
                    out.close()
            self._procs.append(proc)
        return proc

    def run(self, args: list[str], env: dict[str, str] | None = None, timeout: int = 600):
        """Run a command from the repo root to its end: a ``CompletedProcess`` with stdout and stderr."""
        proc = self.start(args, env=env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._closed = True
            procs = list(self._procs)
        for proc in procs:
            kill_group(proc)
        self._pool.shutdown(wait=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (a Spark daemon stops what it started: a worker its executors), SIGKILL after 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill_group(proc)


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    """Poll ``ready`` until it holds; fail with the log's tail if ``proc`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            state = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready in {timeout:.0f} s"
            raise RuntimeError(f"{what} {state}:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def background(spark) -> Iterator[Background]:
    """The session's background thread; the environment it gives processes is the session's now (after the
    Spark fixture set the short-lived JVMs' options and scratch folder)."""
    runner = Background(dict(os.environ))
    yield runner
    runner.close()


# --- Spark Connect: one server, one client process running several jobs --------------------------------------


@dataclass
class ConnectRuns:
    """What ``tests/connect_client.py`` did, by step name (a future), and the folders it worked in."""

    steps: Future[dict[str, dict]]
    source: str
    output: Path
    tmp: Path
    common: tuple[str, ...]


@pytest.fixture(scope="session")
def connect_runs(spark, tiny_model, background, tmp_path_factory) -> ConnectRuns:
    """The scoring job (native engine, then mlflow engine merging into its output, then a run the client must
    refuse), the SQL function and the evaluation job, run one after another by one Connect client process
    against a local Spark Connect server (Delta from the same resolver as the jobs' sessions; its warehouse
    in a folder of its own; its Python workers run this interpreter)."""
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
        EXACT,
        "score.partitions=2",
    )
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
            EXACT,
        ),
    ]
    plan = tmp / "steps.json"
    plan.write_text(json.dumps(list(steps.values())))
    home = tmp / "server"
    home.mkdir()
    future = background.submit(run_connect_client, background, home, plan, tmp / "client", list(steps))
    return ConnectRuns(future, source, output, tmp, common)


def run_connect_client(runner: Background, home: Path, plan: Path, data: Path, names: list[str]) -> dict[str, dict]:
    from spark_sentiment.core.spark_conf import DELTA_CONF, delta_maven_coordinate

    port = free_port()
    confs = {
        **DELTA_CONF,
        **SMALL_DATA_CONF,
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": str(home / "warehouse"),
        "spark.sql.shuffle.partitions": "2",
    }
    command = [str(SPARK_BIN / "spark-submit"), "--master", "local[2]", "--packages", delta_maven_coordinate()]
    command += [arg for key, value in confs.items() for arg in ("--conf", f"{key}={value}")]
    command += ["--class", "org.apache.spark.sql.connect.service.SparkConnectServer", "spark-internal"]
    log = home / "server.log"
    server = runner.start(command, cwd=home, env={"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": PYTHON}, log=log)
    try:
        wait_until(lambda: port_open(port), server, log, "the Spark Connect server", timeout=180)
        env = {"SPARK_REMOTE": f"sc://127.0.0.1:{port}", "SPARK_SENTIMENT_DATA": str(data)}
        result = runner.run([PYTHON, "tests/connect_client.py", str(plan)], env=env)
    finally:
        stop(server)
    if result.returncode != 0:
        raise RuntimeError(f"the Connect client failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return dict(zip(names, json.loads(result.stdout.splitlines()[-1]), strict=True))


# --- A standalone cluster: master + two one-core workers, three submits ---------------------------------------

# Two one-core executors; Delta and Spark tuned for a table of 40 rows, as in the test session (otherwise
# Delta rebuilds each log snapshot in 50 tasks on cold executors).
EXECUTORS = "--conf spark.executor.memory=1g --conf spark.cores.max=2 " + submit_confs(SMALL_DATA_CONF)


@dataclass
class ClusterRuns:
    """The cluster's submits (futures of ``CompletedProcess``) and the folders they worked in."""

    workers: list[Path]
    score: Future[subprocess.CompletedProcess]  # jobs/score.py on the cluster, into the cluster's catalog
    query: Future[subprocess.CompletedProcess]  # jobs/sql.py in a new session over that catalog
    shipped: Future[subprocess.CompletedProcess]  # tests/env_job.py with a packed executor environment
    data: Path  # the score job's local state
    catalog: Path  # the cluster's metastore and warehouse
    records: Path  # what each Python worker of the packed-environment run recorded


@pytest.fixture(scope="session")
def cluster_runs(spark, tiny_model, background, tmp_path_factory) -> ClusterRuns:
    """A master and two one-core workers on 127.0.0.1 (``spark-class``), then, one after another: the scoring
    job submitted to them with ``spark-submit.sh`` into the cluster's own catalog (a Hive metastore and
    warehouse given as confs, as spark-defaults.conf or hive-site.xml would), a second submit (a new
    session, local master, same catalog confs) that queries the scored table with SQL, and a submit whose
    executors run a packed Python environment shipped with ``--archives``. The cluster is stopped after
    the last one."""
    tmp = tmp_path_factory.mktemp("cluster")
    source = str(tmp / "reviews")
    spark.createDataFrame(ROWS_FOR_CLUSTER, "id int, body string").write.format("delta").save(source)
    workers = [tmp / f"worker{i}" for i in range(2)]
    logs = tmp / "cluster-logs"
    for folder in (*workers, logs, tmp / "packed-env", tmp / "interpreters"):
        folder.mkdir()
    started = background.submit(start_cluster, background, workers, logs)

    catalog = tmp / "cluster-catalog"
    catalog_confs = (
        "--conf spark.sql.catalogImplementation=hive "
        f"--conf spark.sql.warehouse.dir={catalog / 'warehouse'} "
        "--conf spark.hadoop.javax.jdo.option.ConnectionURL="
        f"jdbc:derby:;databaseName={catalog / 'metastore'};create=true"
    )
    data = tmp / "job-data"  # the jobs' local state; their catalog is the "cluster's"
    score_sets = [f"input.path={source}", "output.table=cluster_scored", "input.text_columns=[body]"]
    score_sets += ["input.key_columns=[id]", "output.mode=merge", f"model.uri={TINY}", "score.partitions=4"]
    score = background.submit(
        lambda: background.run(
            ["./spark-submit.sh", "jobs/score.py", *sets(*score_sets)],
            env={
                "SPARK_MASTER": started.result().url,
                "SPARK_SENTIMENT_DATA": str(data),
                "SPARK_LOCAL_IP": "127.0.0.1",
                "SPARK_SUBMIT_OPTS_EXTRA": f"{EXECUTORS} {catalog_confs}",
            },
        )
    )
    query_sql = "SELECT body_sentiment AS label, count(*) AS n FROM cluster_scored GROUP BY 1 ORDER BY 1"
    query = background.submit(
        lambda: background.run(
            ["./spark-submit.sh", "jobs/sql.py", query_sql],
            env={
                "SPARK_SENTIMENT_DATA": str(data),
                "SPARK_LOCAL_IP": "127.0.0.1",
                "SPARK_SUBMIT_OPTS_EXTRA": f"{submit_confs(SMALL_DATA_CONF)} {catalog_confs}",
            },
        )
    )

    records = tmp / "interpreters"
    env_sets = [f"input.path={source}", f"output.path={tmp / 'out'}", "input.text_columns=[body]"]
    env_sets += ["input.key_columns=[id]", f"model.uri={TINY}", "score.partitions=4"]
    shipped = background.submit(
        lambda: background.run(
            ["./spark-submit.sh", "tests/env_job.py", str(records), *sets(*env_sets)],
            env={
                "SPARK_MASTER": started.result().url,
                "SPARK_SENTIMENT_DATA": str(tmp / "env-job-data"),
                "SPARK_LOCAL_IP": "127.0.0.1",
                "EXECUTOR_ENV": str(packed_env(background, tmp / "packed-env")),
                "PYTHONPATH": str(REPO / "tests"),  # the driver imports tests/stubs.py (executors get it pickled)
                "SPARK_SUBMIT_OPTS_EXTRA": EXECUTORS,
            },
        )
    )
    background.submit(stop_cluster, started)
    return ClusterRuns(workers, score, query, shipped, data, catalog, records)


@dataclass
class Cluster:
    url: str  # spark://127.0.0.1:<port>
    daemons: list[subprocess.Popen]  # master first


def start_cluster(runner: Background, workers: list[Path], logs: Path) -> Cluster:
    """Master + one one-core worker per folder, returned once every worker has registered."""
    env = {"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    port = free_port()
    spark_class = str(SPARK_BIN / "spark-class")
    master_log = logs / "master.log"
    daemons = [
        runner.start(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)]
            + ["--webui-port", str(free_port())],
            env=env,
            log=master_log,
        )
    ]
    try:
        for i, work in enumerate(workers):
            args = [spark_class, "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}"]
            args += ["--host", "127.0.0.1", "--cores", "1", "--memory", "2g", "--work-dir", str(work)]
            args += ["--webui-port", str(free_port())]
            daemons.append(runner.start(args, env=env, log=logs / f"worker{i}.log"))
        wait_until(
            lambda: master_log.read_text().count("Registering worker") >= len(workers),
            daemons[0],
            master_log,
            "the standalone master or its workers",
            timeout=90,
        )
    except BaseException:
        for proc in daemons:
            kill_group(proc)
        raise
    return Cluster(f"spark://127.0.0.1:{port}", daemons)


def stop_cluster(started: Future[Cluster]) -> None:
    if started.exception() is not None:  # start_cluster stopped what it had started
        return
    daemons = started.result().daemons
    for proc in reversed(daemons):  # workers first: each stops its executors
        proc.terminate()
    for proc in daemons:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_group(proc)


def packed_env(runner: Background, root: Path) -> Path:
    """What a cluster without the venv gets: a venv-pack archive of a fresh venv holding the executor-side
    dependencies of the keyword predictor (numpy, pandas, pyarrow at the versions the driver runs; the
    project itself travels as --py-files). A real model adds torch and transformers (docs/deployment.md)."""
    import numpy
    import pandas
    import pyarrow
    import venv_pack

    prefix = root / "venv"
    # No pip of its own (ensurepip takes seconds): this venv's pip installs into it (pip --python).
    venv = [sys._base_executable, "-m", "venv", "--without-pip", str(prefix)]
    pins = [f"numpy=={numpy.__version__}", f"pandas=={pandas.__version__}", f"pyarrow=={pyarrow.__version__}"]
    pip = [sys.executable, "-m", "pip", "--python", str(prefix / "bin" / "python"), "install", "-q", *pins]
    for command in (venv, [*pip, "--disable-pip-version-check"]):
        done = runner.run(command)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    archive = root / "env.tar.gz"
    venv_pack.pack(prefix=str(prefix), output=str(archive), compress_level=1)
    return archive


# --- A scoring job SIGKILLed during its write (tests/test_faults.py) -------------------------------------------


def resolved_jars(spark) -> str:
    """The Delta jars the test session already resolved, handed to the jobs' JVMs (no Ivy round per job)."""
    s3 = ("hadoop-aws", "awssdk", "analyticsaccelerator", "wildfly-openssl")  # the jobs here need no s3a
    jars = [j for j in spark.sparkContext.getConf().get("spark.jars", "").split(",") if not any(n in j for n in s3)]
    return ",".join(jars) if any("delta-spark" in j for j in jars) else ""


def fault_job(
    tmp: Path, name: str, source, out, fault: str, jars: str, mode: tuple[str, ...] = ("output.mode=incremental",)
) -> tuple[list[str], dict[str, str], Path]:
    """``tests/fault_job.py`` scoring ``source`` into ``out`` (incrementally unless ``mode`` says otherwise)
    with ``fault`` at its write: ``(command, environment to add, go file)``. It starts its Spark session at
    once and runs the job when the go file exists."""
    sets_ = [f"input.path={source}", f"output.path={out}", "input.key_columns=[id]", *mode]
    conf = {
        "spark.ui.enabled": "false",
        "spark.sql.catalogImplementation": "in-memory",
        **SMALL_DATA_CONF,
        **({"spark.jars": jars} if jars else {}),
    }
    sets_ += [f"model.uri={TINY}", f"spark.conf={json.dumps(conf)}"]  # JSON is YAML
    go = tmp / f"{name}.go"
    env = {
        "SPARK_SENTIMENT_DATA": str(tmp / name),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")])),
    }
    return [PYTHON, "tests/fault_job.py", fault, "--go", str(go), *sets(*sets_)], env, go


@dataclass
class KilledRun:
    """The job killed once its write put data files into ``output`` (a future of its ``CompletedProcess``),
    its input, and the output's rows and version before it, and what a clean run gives."""

    job: Future[subprocess.CompletedProcess]
    source: Path
    output: Path
    before: list
    version: int
    clean: object  # a DataFrame over the clean run's output


@pytest.fixture(scope="session")
def killed_run(spark, tiny_model, background, tmp_path_factory) -> KilledRun:
    """An incremental output scored once and a change to its input, prepared in this session; then, in the
    background, a job process scoring the change into it whose whole process group (Python driver and JVM)
    a real SIGKILL ends once the write has put data files into the output."""
    tmp = tmp_path_factory.mktemp("killed")
    source = keyed_source(spark, tmp / "reviews")
    outputs, before, version, clean = prepared(spark, source, tmp, ["killed"])
    command, env, go = fault_job(tmp, "killed", source, outputs["killed"], "kill:during_write", resolved_jars(spark))
    go.touch()
    job = background.submit(lambda: background.run(command, env=env))
    return KilledRun(job, source, outputs["killed"], before, version, clean)


@dataclass
class KilledStream:
    """A streaming job SIGKILLed during a micro-batch's write, then the same job restarted from its
    checkpoint (futures of both ``CompletedProcess``), its input and output, and every input row."""

    killed: Future[subprocess.CompletedProcess]
    restarted: Future[subprocess.CompletedProcess]
    source: Path
    output: Path
    rows: list[tuple[int, str]]


@pytest.fixture(scope="session")
def killed_stream(spark, tiny_model, background, tmp_path_factory) -> KilledStream:
    """A stream scored once in this session (availableNow, merge on id), then three appends to its input;
    in the background a job process scoring them is SIGKILLed (process group: Python driver and JVM) once
    the micro-batch's write has put data files into the output, and a second process restarts the job from
    the same checkpoint."""
    from spark_sentiment.config import load_config
    from spark_sentiment.scoring.config import ScoreJobConfig
    from spark_sentiment.scoring.job import score_table
    from stubs import KeywordPredictor

    tmp = tmp_path_factory.mktemp("killed-stream")
    source, out, checkpoint = tmp / "reviews", tmp / "scored", tmp / "checkpoint"
    rows = key_rows(4)
    spark.createDataFrame(rows, KEY_SCHEMA).write.format("delta").save(str(source))
    mode = ("output.mode=stream", f"stream.checkpoint={checkpoint}", "stream.write=merge")
    sets_ = [f"input.path={source}", f"output.path={out}", "input.key_columns=[id]", f"model.uri={TINY}", *mode]
    score_table(spark, load_config(ScoreJobConfig, None, sets_), factory=KeywordPredictor)
    for i in (5, 6, 7):
        row = [(i, f"review {i}: a wonderful film" if i % 2 else f"review {i}: dull")]
        spark.createDataFrame(row, KEY_SCHEMA).write.format("delta").mode("append").save(str(source))
        rows += row
    jars = resolved_jars(spark)
    killed_cmd, env, go = fault_job(tmp, "killed", source, out, "kill:during_write", jars, mode)
    again_cmd, again_env, again_go = fault_job(tmp, "restarted", source, out, "none", jars, mode)
    go.touch()
    again_go.touch()
    killed = background.submit(lambda: background.run(killed_cmd, env=env))
    restarted = background.submit(lambda: background.run(again_cmd, env=again_env))  # after the kill: one thread
    return KilledStream(killed, restarted, source, out, rows)
