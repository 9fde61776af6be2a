"""Security: safetensors-only weights, no remote code, quoted names, secrets kept out of every output."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import mlflow
import pytest
from spark_sentiment.config import load_config
from spark_sentiment.config.cli import run_job
from spark_sentiment.core.errors import DataError, ModelError
from spark_sentiment.inference.engines import checked_package
from spark_sentiment.inference.predictor import Predictor, PredictorOptions
from spark_sentiment.inference.sql import main as sql_main
from spark_sentiment.io.ingest import main as ingest_main
from spark_sentiment.model.registry import resolve_model
from spark_sentiment.model.transfer import main as model_main
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import main as score_main
from spark_sentiment.scoring.job import score_table
from spark_sentiment.training.job import main as train_main
from spark_sentiment.validation.job import main as evaluate_main
from support.commands import call_main, sets
from support.data import REPO, TINY


def model_copy(tmp_path: Path) -> Path:
    """The tiny registered model's artifacts as a local MLflow model folder."""
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=TINY, dst_path=str(tmp_path / "model")))


def pickled(tmp_path: Path) -> Path:
    """The same model with its weights as a pickle (``pytorch_model.bin``) instead of safetensors."""
    import torch
    from safetensors.torch import load_file

    root = model_copy(tmp_path)
    weights = next(root.rglob("model.safetensors"))
    torch.save(load_file(str(weights)), weights.parent / "pytorch_model.bin")
    weights.unlink()
    return root


def job(spark, tmp_path, *overrides) -> ScoreJobConfig:
    source = tmp_path / "reviews"
    if not source.exists():
        rows = [(1, "I love this movie", "A wonderful film"), (2, "Awful and boring", None)]
        spark.createDataFrame(rows, "id int, `odd``name` string, `b.c` string").write.format("delta").save(str(source))
    return load_config(
        ScoreJobConfig,
        None,
        [
            f"input.path={source}",
            f"output.path={tmp_path / 'out'}",
            "input.text_columns=['odd`name', b.c]",
            f"model.uri={TINY}",
            *overrides,
        ],
    )


def test_pickle_weights_are_refused_unless_explicitly_allowed(spark, tiny_model, tmp_path):
    root = pickled(tmp_path)
    for engine in ("native", "mlflow"):
        with pytest.raises(ModelError, match="no safetensors weights .*pickle weights are refused"):
            score_table(spark, job(spark, tmp_path, f"model.uri={root}", f"engine={engine}"))
    assert not (tmp_path / "out").exists()
    summary = score_table(spark, job(spark, tmp_path, f"model.uri={root}", "model.allow_pickle_weights=true"))
    assert summary.status == "succeeded" and summary.rows_scored == 3


def test_remote_code_in_a_model_is_never_run(tiny_model, tmp_path):
    package = checked_package(resolve_model(TINY))
    folder = tmp_path / "package"
    shutil.copytree(package.local_dir, folder)
    marker = tmp_path / "remote-code-ran"
    (folder / "model" / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((folder / "model" / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "evil.EvilModel"}
    (folder / "model" / "config.json").write_text(json.dumps(config))
    try:
        Predictor(folder, PredictorOptions(device="cpu"))
    except (ValueError, OSError, ModelError):
        pass  # refusing is fine too; running the file is not
    assert not marker.exists()


def test_odd_column_names_are_quoted_not_parsed(spark, tiny_model, tmp_path):
    summary = score_table(spark, job(spark, tmp_path))
    assert summary.rows_scored == 3
    out = spark.read.format("delta").load(str(tmp_path / "out"))
    assert "odd`name_sentiment" in out.columns and "b.c_sentiment" in out.columns


SECRET, KEY = "tok-5f3a9c2e71d04b8a", "c3RvcmFnZS1rZXktOTkxMg=="


def test_secrets_stay_out_of_logs_summary_and_mlflow(spark, tiny_model, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", SECRET)
    monkeypatch.setenv("STORAGE_ACCOUNT_KEY", KEY)
    account_key = "spark.conf={'fs.azure.account.key.acct.dfs.core.windows.net': '${STORAGE_ACCOUNT_KEY}'}"
    cfg = job(spark, tmp_path, account_key)
    assert KEY in json.dumps(cfg.spark.conf)  # the config really holds it
    with caplog.at_level(logging.INFO):
        summary = score_table(spark, cfg)
    run = mlflow.get_run(summary.mlflow_run_id)
    logged = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/summary.json")
    everything = "\n".join(
        [caplog.text, json.dumps(summary.as_dict()), json.dumps(run.data.params), json.dumps(run.data.tags), logged]
    )
    assert SECRET not in everything and KEY not in everything
    assert run.data.params["cfg.spark.conf"] == str({"fs.azure.account.key.acct.dfs.core.windows.net": "***"})


def test_job_error_lines_mask_secrets(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", SECRET)

    def body(cfg):
        token = os.environ["MLFLOW_TRACKING_TOKEN"]
        raise DataError(f"cannot reach https://admin:{token}@store.example.com/x (token {token})")

    code = run_job(["--set", "input.path=/in", "--set", "output.path=/out"], ScoreJobConfig, None, body, "test")
    captured = capsys.readouterr()
    assert code == 2 and SECRET not in captured.out + captured.err
    assert captured.err.strip().splitlines()[-1] == "error: cannot reach https://***@store.example.com/x (token ***)"


def test_what_libraries_print_during_a_command_is_masked(monkeypatch, capsys):
    # MLflow prints "View run at <tracking URI>" with the URI as given, user:password@ included.
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", SECRET)

    def body(cfg):
        print(f"View run at: http://team:pa55word@mlflow.example.com/#/experiments/1 (token {SECRET})")
        sys.stderr.write(f"warning from a library: {SECRET}\n")
        return {"status": "ok"}

    code = run_job(["--set", "input.path=/in", "--set", "output.path=/out"], ScoreJobConfig, None, body, "test")
    captured = capsys.readouterr()
    assert code == 0 and SECRET not in captured.out + captured.err and "pa55word" not in captured.out
    assert "View run at: http://***@mlflow.example.com/#/experiments/1 (token ***)" in captured.out
    assert captured.err.strip() == "warning from a library: ***"


def test_no_code_path_enables_remote_code():
    sources = "\n".join(p.read_text() for p in (REPO / "lib").rglob("*.py"))
    assert "trust_remote_code=True" not in sources


# Every console command, given bad input that carries a secret: a secret-looking environment variable's value
# inside a path, and user:password@ in a URI. Each case: (entry function, argv) from (tmp folder, bad path).
ENV_SECRET, URI_PASSWORD = "pw-9d41c7e5b2", "hunter2-0b7e"
CREDENTIAL_URI = f"file://analyst:{URI_PASSWORD}@nas.example.com/reviews"


COMMANDS = {
    "train": lambda tmp, path: (train_main, sets(f"data.path={path}", "model.base=tiny-random", "train.max_steps=1")),
    "score": lambda tmp, path: (
        score_main,
        sets(f"input.path={path}", f"output.path={tmp}/out", f"model.uri={TINY}", f"report.runs_table={tmp}/runs"),
    ),
    "evaluate": lambda tmp, path: (
        evaluate_main,
        sets(
            f"input.path={path}", f"models.candidate={TINY}", f"models.champion={TINY}", f"report.runs_table={tmp}/runs"
        ),
    ),
    "ingest": lambda tmp, path: (ingest_main, ["--source", path, "--path", f"{tmp}/landed"]),
    "sql": lambda tmp, path: (sql_main, [f"SELECT count(*) FROM parquet.`{path}`"]),
    "model import": lambda tmp, path: (model_main, ["import", path, "--name", "Imported"]),
}


@pytest.mark.parametrize("secret", ["env value in a path", "user:password@ in a URI"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_fails_bad_input_in_one_scrubbed_line(spark, tiny_model, tmp_path, monkeypatch, command, secret):

    monkeypatch.setenv("WAREHOUSE_PASSWORD", ENV_SECRET)
    path = f"{tmp_path}/missing-{ENV_SECRET}/reviews" if secret.startswith("env") else CREDENTIAL_URI
    main, argv = COMMANDS[command](tmp_path, path)
    before = {run.info.run_id for run in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    code, out, err = call_main(main, argv)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert (code, len(errors)) == (2, 1), err[-2000:]
    assert err.strip().splitlines()[-1] == errors[0] and "Traceback" not in err
    assert "***" in errors[0] or "missing-" not in errors[0]  # it names the path, masked
    runs = [
        r for r in mlflow.search_runs(search_all_experiments=True, output_format="list") if r.info.run_id not in before
    ]
    recorded = [json.dumps(r.data.params) + json.dumps(r.data.tags) for r in runs]
    if (tmp_path / "runs").exists():
        recorded += [json.dumps(r.asDict()) for r in spark.read.format("delta").load(str(tmp_path / "runs")).collect()]
    everything = "\n".join([out, err, *recorded])
    assert ENV_SECRET not in everything and URI_PASSWORD not in everything
    assert not (tmp_path / "out").exists() and not (tmp_path / "landed").exists()


@pytest.mark.parametrize(
    "statement, message",
    [
        ("SELEC 1", "error: Spark refused the input: [PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'"),
        ("SELECT * FROM no_such_table", "error: Spark refused the input: [TABLE_OR_VIEW_NOT_FOUND] The table or view"),
    ],
)
def test_sql_statements_spark_refuses_end_in_one_line(spark, statement, message):

    code, out, err = call_main(sql_main, [statement])
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip().splitlines()[0]] and err.startswith(message), err[-2000:]
