"""Evaluation, promotion and drift with real models: the session's MiniLM fine-tuned on real IMDB reviews
(the strong one) against the tiny random BERT (the weak one), both versions of one registered model."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from spark_sentiment.config import load_config
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import score_table
from spark_sentiment.validation.config import EvaluateJobConfig
from spark_sentiment.validation.job import evaluate_and_promote, main
from support.commands import call_main
from support.data import IMDB
from support.machine import cpu_has_bf16

NAME = "EvalSentiment"
# What is tested here is the decision (promotion, drift), not the arithmetic: where the CPU has native bf16
# the models score in it (MiniLM ~2x faster than fp32 on the CI machine's Zen 4), as score.precision lets
# users do; the engines' agreement in fp32 is tested in test_scoring_real.
PRECISION = f"score.precision={'bf16' if cpu_has_bf16() else 'fp32'}"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (IMDB / "test.parquet").exists(), reason="needs IMDB parquet beside the repo"),
]


@pytest.fixture(scope="module")
def versions(tiny_model, minilm_model) -> dict[str, str]:
    """v1: the tiny random BERT (weak, champion), v2: the session's MiniLM (strong, candidate) -- the two
    trained models of the session registered again as versions of one model (no training here)."""
    client = MlflowClient()
    out = {}
    for role, trained in (("weak", tiny_model), ("strong", minilm_model)):
        out[role] = str(mlflow.register_model(f"runs:/{trained['run_id']}/model", NAME).version)
    client.set_registered_model_alias(NAME, "champion", out["weak"])
    client.set_registered_model_alias(NAME, "candidate", out["strong"])
    return out


def evaluation(*overrides) -> EvaluateJobConfig:
    base = [f"input.path={IMDB}", "input.rows=200", "score.max_length=96", "promotion.metric=f1", PRECISION]
    base += [f"models.candidate=models:/{NAME}@candidate", f"models.champion=models:/{NAME}@champion"]
    return load_config(EvaluateJobConfig, None, [*base, *overrides])


def aliases() -> dict[str, str]:
    return {k: str(v) for k, v in MlflowClient().get_registered_model(NAME).aliases.items()}


def test_training_logs_curves_and_a_reference_distribution(versions):
    run_id = MlflowClient().get_model_version(NAME, versions["strong"]).run_id
    names = {a.path for a in MlflowClient().list_artifacts(run_id, "plots")}
    assert "plots/training_curves.png" in names
    reference = mlflow.artifacts.load_dict(f"runs:/{run_id}/monitoring/reference.json")
    assert reference["rows"] == 200 and abs(sum(reference["labels"].values()) - 1) < 1e-9
    assert len(MlflowClient().get_metric_history(run_id, "loss")) >= 2  # the curve is a history, not a point


def test_better_candidate_is_promoted_and_worse_one_refused(spark, versions, tmp_path):
    assert aliases() == {"champion": versions["weak"], "candidate": versions["strong"]}
    summary = evaluate_and_promote(spark, evaluation())
    assert (summary["status"], summary["exit_code"]) == ("promoted", 0), summary["reason"]
    assert summary["candidate"]["f1"] > summary["champion"]["f1"]
    assert summary["candidate"]["accuracy"] >= 0.65 and summary["candidate"]["roc_auc"] >= 0.7
    assert summary["rows"] == 200 and summary["candidate"]["unscored"] == 0
    assert aliases()["champion"] == versions["strong"] and aliases()["previous_champion"] == versions["weak"]

    child = mlflow.search_runs(
        experiment_names=["sentiment-evaluation"], filter_string="params.role = 'candidate'", output_format="list"
    )[0]
    plots = {a.path for a in MlflowClient().list_artifacts(child.info.run_id, "plots")}
    assert plots == {f"plots/{p}.png" for p in ("confusion_matrix", "roc_curve", "calibration", "score_histogram")}
    metrics = mlflow.artifacts.load_dict(f"runs:/{child.info.run_id}/evaluation/metrics.json")
    assert sum(map(sum, metrics["confusion_matrix"])) == 200

    # The weak version as candidate against the strong champion: refused, exit code 3, aliases unchanged.
    # The summary also goes where a scheduler reads it (a file, a row of the runs table).
    MlflowClient().set_registered_model_alias(NAME, "candidate", versions["weak"])
    report = [f"report.summary_path={tmp_path / 'evaluate.json'}", f"report.runs_table={tmp_path / 'runs'}"]
    code, out, err = call_main(main, sum((["--set", o] for o in evaluation_args() + report), []))
    assert code == 3, err[-3000:]
    refused = json.loads(out.strip().splitlines()[-1])
    assert refused["status"] == "kept_champion" and refused["candidate"]["f1"] < refused["champion"]["f1"]
    assert refused["rows"] == 100
    assert aliases()["champion"] == versions["strong"]
    assert json.loads((tmp_path / "evaluate.json").read_text()) == refused
    run = spark.read.format("delta").load(str(tmp_path / "runs")).first()
    assert (run["job"], run["status"], run["exit_code"], run["model"]) == (
        "evaluate",
        "kept_champion",
        3,
        refused["candidate"]["model"],
    )


def evaluation_args() -> list[str]:
    # 100 reviews: the random BERT against the fine-tuned MiniLM needs no more to lose
    return [f"input.path={IMDB}", "input.rows=100", "score.max_length=96", PRECISION] + [
        f"models.candidate=models:/{NAME}@candidate",
        f"models.champion=models:/{NAME}@champion",
    ]


def test_drift_flag_fires_on_skewed_input_and_stays_quiet_on_balanced(spark, versions, tmp_path):
    test = pd.read_parquet(IMDB / "test.parquet", columns=["review_id", "text", "label", "rating"])
    balanced = pd.concat([test[test.label == 0].head(100), test[test.label == 1].head(100)])
    negative = test[test.rating == 1].head(120)  # only clearly negative reviews (drift judges >= 100 rows)
    summaries = {}
    for name, frame in (("balanced", balanced), ("negative", negative)):
        path = tmp_path / name
        spark.createDataFrame(frame[["review_id", "text"]]).write.format("delta").save(str(path))
        cfg = load_config(
            ScoreJobConfig,
            None,
            [
                f"input.path={path}",
                f"output.path={tmp_path / (name + '_scored')}",
                f"model.uri=models:/{NAME}/{versions['strong']}",
                "score.max_length=96",
                PRECISION,
            ],
        )
        summaries[name] = score_table(spark, cfg)
    print({k: v.drift for k, v in summaries.items()})
    assert summaries["balanced"].drifted is False
    assert summaries["negative"].drifted is True
    assert summaries["negative"].drift["text"]["label_psi"] > 0.2
    run = mlflow.get_run(summaries["negative"].mlflow_run_id)
    assert run.data.tags["drifted"] == "true" and run.data.metrics["drift.text.label_psi"] > 0.2
