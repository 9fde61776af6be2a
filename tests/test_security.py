"""Security: safetensors-only weights, no remote code, quoted names, secrets kept out of every output."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import mlflow
import pytest
from conftest import REPO, TINY
from spark_sentiment.config import load_config
from spark_sentiment.config.cli import run_job
from spark_sentiment.core.errors import DataError, ModelError
from spark_sentiment.inference.engines import checked_package
from spark_sentiment.inference.predictor import Predictor, PredictorOptions
from spark_sentiment.model.registry import resolve_model
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import score_table


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


def test_no_code_path_enables_remote_code():
    sources = "\n".join(p.read_text() for p in (REPO / "lib").rglob("*.py"))
    assert "trust_remote_code=True" not in sources
