"""The jobs against a self-managed MLflow as teams run it off Databricks and Fabric: ``mlflow server`` on a
PostgreSQL backend store, artifacts proxied to S3 (the session's S3 server), behind the basic-auth app, reached
over HTTP with a user's credentials (``tests/support/servers.py``).

End to end over HTTP: train registers versions with aliases, score (both engines, merge and stream) resolves
``models:/...@champion``, evaluate promotes, ``spark-sentiment-model import`` registers a moved folder, the SQL
function resolves a model; the executors never need the server; an unreachable server or refused
credentials are one ``error:`` line naming the URI without its credentials, and nothing is written; the
password is in no output, summary, MLflow param or runs table.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import boto3
import mlflow
import pytest
from mlflow import MlflowClient
from spark_sentiment.config import load_config
from spark_sentiment.config.sections import MlflowSection
from spark_sentiment.inference.sql import main as sql_main
from spark_sentiment.model import tracking
from spark_sentiment.model.transfer import main as model_main
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.hooks import WriteHooks
from spark_sentiment.scoring.job import main as score_main
from spark_sentiment.scoring.job import score_table
from spark_sentiment.training.job import main as train_main
from spark_sentiment.validation.config import EvaluateJobConfig
from spark_sentiment.validation.job import evaluate_and_promote
from spark_sentiment.validation.job import main as evaluate_main
from support.commands import call_main, sets
from support.data import EXACT, IMDB, KEY_SCHEMA, REPO, key_rows, labeled_rows
from support.mlflow_uris import mlflow_uris_restored
from support.processes import PYTHON, free_port
from support.servers import MlflowServer, Postgres
from support.spark_conf import S3_BUCKET, S3_KEYS

pytestmark = pytest.mark.slow

NAME = "ServerSentiment"
USER, PASSWORD = "ml-team", "team-pass-93d2e1"
ARTIFACTS = "mlflow-artifacts"


@pytest.fixture(scope="module")
def server(s3_endpoint, tmp_path_factory):
    """PostgreSQL and ``mlflow server`` for this module; the session's MLflow URIs are restored after it."""
    with mlflow_uris_restored():
        postgres = Postgres().start()
        mlflow_server = None
        try:
            folder = tmp_path_factory.mktemp("mlflow-server")
            mlflow_server = MlflowServer(postgres, f"s3://{S3_BUCKET}/{ARTIFACTS}", s3_endpoint, folder, S3_KEYS)
            mlflow_server.start().create_user(USER, PASSWORD)
            yield mlflow_server
        finally:
            if mlflow_server is not None:
                mlflow_server.stop()
            postgres.stop()


@pytest.fixture()
def team(server, monkeypatch):
    """The team's user, as a job gets it: credentials in the environment. MLflow retries a refused
    connection for about four minutes by default; a few seconds here (the same two settings users have)."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    return server


@pytest.fixture(scope="module")
def labeled(spark, tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("server-data") / "labeled")
    spark.createDataFrame(labeled_rows(64), "review_id string, text string, label int").write.format("delta").save(path)
    return path


def train(uri: str, labeled: str, name: str = NAME) -> dict:
    args = [f"data.path={labeled}", "data.train_rows=48", "data.eval_rows=16", "model.base=tiny-random"]
    args += ["train.max_steps=2", "train.batch_size=8", "train.max_length=32", f"registry.name={name}"]
    code, out, err = call_main(train_main, sets(*args, f"mlflow.tracking_uri={uri}"))
    assert code == 0, err[-3000:]
    assert PASSWORD not in out + err
    return json.loads(out.strip().splitlines()[-1])


def scoring(spark, server, tmp_path, out: str, model_uri: str) -> ScoreJobConfig:
    """A scoring job of six keyed reviews (a new Delta table) into ``out`` with ``model_uri`` from the server."""
    source = str(tmp_path / "reviews")
    spark.createDataFrame(key_rows(), KEY_SCHEMA).write.format("delta").save(source)
    args = [f"input.path={source}", f"output.path={out}", "input.key_columns=[id]", f"model.uri={model_uri}"]
    return load_config(ScoreJobConfig, None, [*args, EXACT, f"mlflow.tracking_uri={server.uri}"])


def no_password_in_runs(server) -> None:
    """Neither a param nor a tag of any run the server holds carries the password."""
    for table in ("params", "tags"):
        rows = server.postgres.execute(f"SELECT key, value FROM {table}", database="mlflow")
        assert rows and not [r for r in rows if PASSWORD in (r[1] or "")], table


def test_train_score_evaluate_import_and_sql_over_http(spark, minilm_model, team, labeled, tmp_path, monkeypatch):
    session_store = os.environ["MLFLOW_TRACKING_URI"]
    # train: two versions; the first becomes champion (none yet), each the candidate when registered
    first, second = train(team.uri, labeled), train(team.uri, labeled)
    assert (first["model_version"], second["model_version"]) == ("1", "2")
    client = MlflowClient(team.uri, team.uri)
    aliases = {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}
    assert aliases == {"champion": "1", "candidate": "2"}
    # the runs and versions are rows in PostgreSQL, the model files objects in S3 (proxied by the server)
    db = team.postgres
    assert db.execute(f"SELECT version FROM model_versions WHERE name = '{NAME}' ORDER BY version", "mlflow") == [
        (1,),
        (2,),
    ]
    s3 = boto3.client("s3", endpoint_url=spark.conf.get("spark.hadoop.fs.s3a.endpoint"), **S3_KEYS)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=S3_BUCKET, Prefix=ARTIFACTS)["Contents"]]
    assert sum(key.endswith("/MLmodel") for key in keys) >= 2, keys[:20]

    # score: both engines (merge) and stream, the champion resolved over HTTP -- the credentials given
    # in the URI this time, not the environment
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    in_uri = team.uri.replace("http://", f"http://{USER}:{PASSWORD}@")
    source = str(tmp_path / "reviews")
    spark.createDataFrame(key_rows(), KEY_SCHEMA).write.format("delta").save(source)
    runs_table = str(tmp_path / "runs")
    base = [f"input.path={source}", "input.key_columns=[id]", f"model.uri=models:/{NAME}@champion", EXACT]
    base += [f"mlflow.tracking_uri={in_uri}", f"report.runs_table={runs_table}"]
    outputs = {}
    for engine, mode in (("native", "merge"), ("mlflow", "merge"), ("native", "stream")):
        out = str(tmp_path / f"scored_{engine}_{mode}")
        extra = [f"engine={engine}", f"output.path={out}", f"output.mode={mode}"]
        extra += [f"stream.checkpoint={tmp_path / 'checkpoint'}"] if mode == "stream" else []
        code, stdout, err = call_main(score_main, sets(*base, *extra))
        assert code == 0, err[-3000:]
        assert PASSWORD not in stdout + err
        summary = json.loads(stdout.strip().splitlines()[-1])
        assert summary["model"] == f"{NAME}/1" and summary["rows_scored"] == 6, summary
        rows = spark.read.format("delta").load(out).collect()
        outputs[(engine, mode)] = {r["id"]: r["text_sentiment"] for r in rows}
        assert {r["sentiment_model"] for r in rows} == {f"{NAME}/1"}
    assert len({json.dumps(v, sort_keys=True) for v in outputs.values()}) == 1  # the same labels every way
    runs = spark.read.format("delta").load(runs_table).collect()
    assert len(runs) == 3 and not [r for r in runs if PASSWORD in json.dumps(r.asDict(), default=str)]
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)

    # import: the session's fine-tuned MiniLM, exported from its store, registered on the server as the new
    # candidate; evaluate then promotes it over the tiny champion
    export = tmp_path / "export"
    tracking.configure(MlflowSection(tracking_uri=session_store))  # the registry there, as the jobs point to it
    mlflow.artifacts.download_artifacts(artifact_uri=minilm_model["model_uri"], dst_path=str(export))
    code, out, err = call_main(
        model_main, ["import", str(export), "--name", NAME, "--alias", "candidate", "--tracking-uri", team.uri]
    )
    assert code == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["version"] == "3"
    args = [f"input.path={IMDB}", "input.rows=100", "score.max_length=96", f"mlflow.tracking_uri={team.uri}"]
    args += [f"models.candidate=models:/{NAME}@candidate", f"models.champion=models:/{NAME}@champion"]
    code, out, err = call_main(evaluate_main, sets(*args, "promotion.metric=f1"))
    assert code == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["status"] == "promoted"
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "3"

    # the SQL function resolves its model on the server ($MLFLOW_TRACKING_URI, as a notebook would set it)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.uri)
    statement = "SELECT sentiment('A wonderful, moving film.').label AS label"
    code, out, err = call_main(sql_main, ["--function", f"models:/{NAME}@champion", statement])
    assert code == 0, err[-3000:]
    lines = out.strip().splitlines()
    assert json.loads(lines[0])["label"] == "POSITIVE" and json.loads(lines[-1])["model"] == f"{NAME}/3"
    no_password_in_runs(team)


def test_the_executors_need_no_server(spark, team, labeled, tmp_path):
    """The model is resolved and shipped on the driver; the server is stopped before the write (where the
    executors load and run the model) and started again after it, for the run's report."""
    version = train(team.uri, labeled, name="Shipped")["model_version"]
    out = str(tmp_path / "scored")
    cfg = scoring(spark, team, tmp_path, out, "models:/Shipped@champion")
    seen = []

    def server_down(target) -> None:
        team.stop()
        seen.append(team.healthy())

    summary = score_table(spark, cfg, hooks=WriteHooks(before_write=server_down, after_write=lambda *_: team.start()))
    assert seen == [False] and summary.status == "succeeded" and summary.rows_scored == 6
    assert spark.read.format("delta").load(out).count() == 6 and summary.model == f"Shipped/{version}"


@pytest.mark.parametrize("case", ["unreachable", "wrong password"])
def test_a_server_that_cannot_be_used_is_one_line_and_nothing_is_written(
    spark, team, labeled, tmp_path, monkeypatch, case
):
    port = team.port if case == "wrong password" else free_port()
    secret = "wrong-pass-4b1c" if case == "wrong password" else PASSWORD
    uri = f"http://{USER}:{secret}@127.0.0.1:{port}"
    source, out = str(tmp_path / "reviews"), str(tmp_path / "scored")
    spark.createDataFrame(key_rows(), KEY_SCHEMA).write.format("delta").save(source)
    at = sets(f"mlflow.tracking_uri={uri}")
    commands = {
        "train": (train_main, sets(f"data.path={labeled}", "model.base=tiny-random", f"registry.name={NAME}-x") + at),
        "score": (score_main, sets(f"input.path={source}", f"output.path={out}", f"model.uri=models:/{NAME}@x") + at),
        "evaluate": (evaluate_main, sets(f"input.path={labeled}", f"models.candidate=models:/{NAME}@x") + at),
        "sql": (sql_main, ["--function", f"models:/{NAME}@x", "SELECT 1"]),  # the URI from the environment
    }
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name, (main, args) in commands.items():
        code, stdout, err = call_main(main, args)
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (name, err[-3000:])
        assert f"http://***@127.0.0.1:{port}" in lines[0], lines[0]
        expected = "refused the request (UNAUTHENTICATED)" if case == "wrong password" else "cannot reach"
        assert expected in lines[0] and secret not in stdout + err, lines[0]
    assert not (tmp_path / "scored").exists()
    assert f"{NAME}-x" not in [m.name for m in MlflowClient(team.uri, team.uri).search_registered_models()]


def model_files_complete(server, uri: str, tmp_path) -> None:
    """A registered version downloads from the server with its weights and predicts."""
    folder = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path / uri.replace("/", "_")))
    files = {p.name for p in Path(folder).rglob("*") if p.is_file()}
    assert {"MLmodel", "model.safetensors", "tokenizer.json"} <= files, sorted(files)
    assert len(mlflow.pyfunc.load_model(folder).predict(["fine"])) == 1


def test_a_server_crashing_during_the_final_logging_is_retried_to_a_complete_version(
    spark, team, labeled, tmp_path, monkeypatch
):
    """The server is killed when the training job writes its first artifact (curves, model files) and
    started again on its port: MLflow's retries (here 5, backoff factor 2: about a minute) carry the job
    over the restart, and the version it registers has all its files."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2")
    s3 = boto3.client("s3", endpoint_url=spark.conf.get("spark.hadoop.fs.s3a.endpoint"), **S3_KEYS)

    def keys() -> set[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET, Prefix=ARTIFACTS)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    before, restarted, done = keys(), [], threading.Event()

    def crash_at_first_artifact() -> None:
        while not done.is_set():
            if keys() - before:
                team.crash()
                restarted.append(team.start().starts)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=crash_at_first_artifact, daemon=True)
    watcher.start()
    try:
        trained = train(team.uri, labeled, name="Restarted")
    finally:
        done.set()
        watcher.join(timeout=120)
    assert restarted, "the server was not restarted during the job"
    assert MlflowClient(team.uri, team.uri).get_run(trained["run_id"]).info.status == "FINISHED"
    versions = MlflowClient(team.uri, team.uri).search_model_versions("name = 'Restarted'")
    assert [str(v.version) for v in versions] == [trained["model_version"]]
    tracking.configure(MlflowSection(tracking_uri=team.uri))  # models:/ URIs resolve on the server
    model_files_complete(team, trained["model_uri"], tmp_path)


def test_two_trainings_register_at_once_and_scoring_records_the_version_it_resolved(spark, team, labeled, tmp_path):
    """Two training jobs (separate processes) register versions of one model at the same time; then a
    scoring job resolves @champion while an evaluation moves it (between the job's model resolution and its
    write): the rows and the run record the version that scored them."""
    args = [f"data.path={labeled}", "data.train_rows=48", "data.eval_rows=16", "model.base=tiny-random"]
    args += ["train.max_steps=2", "train.batch_size=8", "train.max_length=32", "registry.name=Together"]
    command = [PYTHON, "jobs/train.py", *sets(*args, f"mlflow.tracking_uri={team.uri}")]
    procs = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err[-3000:]
        assert PASSWORD not in out + err
    registered = sorted(json.loads(out.strip().splitlines()[-1])["model_version"] for out, _ in results)
    assert registered == ["1", "2"]
    client = MlflowClient(team.uri, team.uri)
    tracking.configure(MlflowSection(tracking_uri=team.uri))  # models:/ URIs resolve on the server
    for version in registered:
        model_files_complete(team, f"models:/Together/{version}", tmp_path)
    champion = str(client.get_model_version_by_alias("Together", "champion").version)
    other = next(v for v in registered if v != champion)
    client.set_registered_model_alias("Together", "candidate", other)

    out = str(tmp_path / "scored")
    score = scoring(spark, team, tmp_path, out, "models:/Together@champion")
    evaluation = load_config(
        EvaluateJobConfig,
        None,
        [f"input.path={labeled}", "input.rows=null", "models.candidate=models:/Together@candidate", EXACT]
        + ["models.champion=models:/Together@champion", "promotion.margin=0", f"mlflow.tracking_uri={team.uri}"],
    )
    moved = []

    def evaluate_meanwhile(target) -> None:
        if not moved:
            moved.append(evaluate_and_promote(spark, evaluation))
            if moved[0]["status"] != "promoted":  # the random models may tie: the alias moves by hand then
                client.set_registered_model_alias("Together", "champion", other)

    summary = score_table(spark, score, hooks=WriteHooks(before_write=evaluate_meanwhile))
    assert str(client.get_model_version_by_alias("Together", "champion").version) == other
    assert summary.model == f"Together/{champion}" and summary.status == "succeeded"
    assert {r["sentiment_model"] for r in spark.read.format("delta").load(out).collect()} == {f"Together/{champion}"}
    assert client.get_run(summary.mlflow_run_id).data.params["model"] == f"Together/{champion}"
