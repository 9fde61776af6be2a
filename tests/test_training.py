"""Training end to end with real Spark, Delta and MLflow: tiny random model (fast) and the real MiniLM (slow)."""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from spark_sentiment.config import load_config
from spark_sentiment.core.errors import DataError
from spark_sentiment.training.config import TrainJobConfig
from spark_sentiment.training.job import main
from spark_sentiment.training.trainer import train_and_register
from support.commands import call_main
from support.data import MINILM, labeled_rows

LONG_REVIEW = " ".join(["This film was a slow, strange and ultimately rewarding experience."] * 60)  # ~600 tokens


def test_tiny_model_is_registered_with_aliases_in_one_run(tiny_model):
    assert tiny_model["model_name"] == "TinySentiment"
    assert tiny_model["aliases"] == ["candidate", "champion"]
    assert tiny_model["train_rows"] == 48 and tiny_model["eval_rows"] == 16
    assert set(tiny_model["metrics"]) == {"accuracy", "f1"}
    run = MlflowClient().get_run(tiny_model["run_id"])
    assert run.data.params["cfg.model.base"] == "tiny-random"
    assert run.data.params["learning_rate"] == "2e-05"  # logged by Trainer's MLflow callback, same run
    assert "final_accuracy" in run.data.metrics and "eval_accuracy" in run.data.metrics
    # where the job's time went, in the summary and on the run; the phases add up to the job's seconds
    phases = tiny_model["phases"]
    assert set(phases) == {"data_seconds", "tracking_seconds", "fit_seconds", "log_register_seconds"}
    assert abs(sum(phases.values()) - tiny_model["seconds"]) < 0.5
    assert {**phases, "job_seconds": run.data.metrics["job_seconds"]}.items() <= run.data.metrics.items()
    version = MlflowClient().get_model_version("TinySentiment", tiny_model["model_version"])
    assert version.run_id == tiny_model["run_id"]


def test_each_epoch_is_evaluated_once_and_the_last_evaluation_is_the_final_prediction(monkeypatch):
    """Two epochs: the eval set goes through the model twice (after epoch 1, then the final prediction that
    stands in for epoch 2's evaluation), not three times; both points are in the curves at their steps."""
    import datasets
    from spark_sentiment.training.fit import fit
    from transformers import Trainer

    passes = []
    real_loop = Trainer.evaluation_loop

    def counted(self, *args, **kwargs):
        passes.append(self.state.global_step)
        return real_loop(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "evaluation_loop", counted)
    rows = labeled_rows(24)
    train = datasets.Dataset.from_dict({"text": [r[1] for r in rows[:16]], "label": [r[2] for r in rows[:16]]})
    held_out = datasets.Dataset.from_dict({"text": [r[1] for r in rows[16:]], "label": [r[2] for r in rows[16:]]})
    overrides = ["data.path=unused", "model.base=tiny-random", "train.epochs=2", "train.batch_size=8"]
    cfg = load_config(TrainJobConfig, None, [*overrides, "train.max_length=32"])
    fitted = fit(cfg, train, held_out, report_to=[])
    assert passes == [2, 4]  # 16 rows at 8 per step: 2 steps per epoch
    evals = [(h["step"], h["eval_accuracy"]) for h in fitted.log_history if "eval_accuracy" in h]
    assert evals[0][0] == 2 and evals[1] == (4, fitted.metrics["eval_accuracy"])
    assert len(evals) == 2


def test_registered_model_loads_back_and_labels_a_600_token_review(tiny_model):
    uri = "models:/TinySentiment@champion"
    pipe = mlflow.transformers.load_model(uri, truncation=True)
    assert len(pipe.tokenizer(LONG_REVIEW)["input_ids"]) > 512
    (result,) = pipe(LONG_REVIEW)
    assert result["label"] in ("NEGATIVE", "POSITIVE") and 0 <= result["score"] <= 1
    # pyfunc (what spark_udf uses) applies the logged model_config: truncation needs no argument.
    predictions = mlflow.pyfunc.load_model(uri).predict([LONG_REVIEW, "I love this movie"])
    assert list(predictions.columns) == ["label", "score", "probabilities"] and len(predictions) == 2
    assert all(abs(sum(p.values()) - 1) < 1e-5 for p in predictions["probabilities"])
    signature = mlflow.models.get_model_info(uri).signature
    assert signature.inputs.input_types()[0].name == "string"


def test_second_version_becomes_candidate_and_keeps_champion(spark, tiny_model, tmp_path, caplog):
    """Through the entry point, with the summary also written where a scheduler reads it."""
    spark.createDataFrame(labeled_rows(32), "review_id string, text string, label int").toPandas().to_parquet(
        tmp_path / "train.parquet"
    )
    sets = [
        f"data.path={tmp_path / 'train.parquet'}",
        "data.eval_rows=8",
        "model.base=tiny-random",
        "train.max_steps=2",
        "train.max_length=32",
        "registry.name=TinySentiment",
        f"report.summary_path={tmp_path / 'train.json'}",
        f"report.runs_table={tmp_path / 'runs'}",
        "registry.request_id=nightly-2026-11-27",
    ]
    argv = sum((["--set", s] for s in sets), [])
    with caplog.at_level("INFO", logger="spark_sentiment.training"):
        code, out, err = call_main(main, argv)
    assert code == 0, err[-3000:]
    assert len(out.strip().splitlines()) == 1  # stdout: the summary only; the Trainer's logs are log lines
    summary = json.loads(out)
    trainer_lines = [r.getMessage() for r in caplog.records if r.name == "spark_sentiment.training.arguments"]
    assert any(line.startswith("step 2/2: ") and "eval_accuracy=" in line for line in trainer_lines), trainer_lines
    assert json.loads((tmp_path / "train.json").read_text()) == summary
    run = spark.read.format("delta").load(str(tmp_path / "runs")).first()
    assert (run["job"], run["status"], run["exit_code"]) == ("train", "succeeded", 0)
    assert json.loads(run["summary"]) == summary
    client = MlflowClient()
    versions_before = len(client.search_model_versions("name = 'TinySentiment'"))

    # The scheduler retries the same request: the version it registered is reported, nothing is added.
    code, out, err = call_main(main, argv)
    assert code == 0, err[-3000:]
    retried = json.loads(out.strip().splitlines()[-1])
    assert (retried["status"], retried["model_version"]) == ("already_registered", summary["model_version"])
    assert len(client.search_model_versions("name = 'TinySentiment'")) == versions_before
    assert int(summary["model_version"]) == int(tiny_model["model_version"]) + 1
    assert summary["aliases"] == ["candidate"]
    assert str(client.get_model_version_by_alias("TinySentiment", "candidate").version) == summary["model_version"]
    assert str(client.get_model_version_by_alias("TinySentiment", "champion").version) == tiny_model["model_version"]


def test_label_value_7_fails_and_registers_nothing(spark, tmp_path):
    rows = labeled_rows(16) + [("bad", "a review with an impossible label", 7)]
    spark.createDataFrame(rows, "review_id string, text string, label int").write.format("delta").save(
        str(tmp_path / "bad")
    )
    cfg = load_config(
        TrainJobConfig,
        None,
        [f"data.path={tmp_path / 'bad'}", "model.base=tiny-random", "registry.name=NeverRegistered"],
    )
    with pytest.raises(DataError, match="label column 'label' in delta:.* has unknown value '7' in 1 row"):
        train_and_register(spark, cfg)
    assert MlflowClient().search_registered_models("name = 'NeverRegistered'") == []


@pytest.mark.slow
def test_training_entry_point_fine_tunes_real_minilm_on_imdb_and_registers(minilm_model):
    """The training job's entry function (what jobs/train.py and spark-submit run), on the packaged MiniLM
    and real IMDB reviews: a registered version that learned something and loads back as a pipeline."""
    assert minilm_model["model_uri"] == f"models:/{MINILM}/1"
    assert (minilm_model["train_rows"], minilm_model["eval_rows"]) == (1000, 200)
    assert minilm_model["metrics"]["accuracy"] >= 0.7  # 0.775 when measured; chance is 0.5
    assert minilm_model["examples"] == {
        "I love this movie": "POSITIVE",
        "this movie was the worst, boring!": "NEGATIVE",
    }
    pipe = mlflow.transformers.load_model(f"models:/{MINILM}@candidate", truncation=True)
    assert pipe.model.config.num_hidden_layers == 6 and pipe.model.config.hidden_size == 384  # MiniLM-L6
    assert pipe(LONG_REVIEW)[0]["label"] in ("NEGATIVE", "POSITIVE")


@pytest.mark.slow
def test_torch_distributor_trains_on_two_local_processes_and_registers(spark, tmp_path):
    source = tmp_path / "reviews"
    spark.createDataFrame(labeled_rows(64), "review_id string, text string, label int").write.format("delta").save(
        str(source)
    )
    overrides = [f"data.path={source}", "data.train_rows=48", "data.eval_rows=16", "model.base=tiny-random"]
    overrides += ["train.epochs=1", "train.batch_size=8", "train.max_length=64", "train.logging_steps=1"]
    cfg = load_config(TrainJobConfig, None, [*overrides, "train.num_processes=2", "registry.name=DistSentiment"])
    summary = train_and_register(spark, cfg)
    assert (summary["model_version"], summary["num_processes"]) == ("1", 2)
    client = MlflowClient()
    run = client.get_run(summary["run_id"])
    assert run.data.params["world_size"] == "2"
    # Data-parallel: one epoch of 48 rows at 8 rows per process and step is 3 steps with 2 processes
    # (6 if each process trained alone on all rows); one loss point per step, from rank 0.
    assert len(client.get_metric_history(summary["run_id"], "loss")) == 3
    assert summary["metrics"]["accuracy"] == run.data.metrics["final_accuracy"]
    assert client.get_model_version("DistSentiment", "1").run_id == summary["run_id"]
    assert set(summary["examples"].values()) <= {"NEGATIVE", "POSITIVE"}


def test_the_jobs_log_shows_about_twenty_training_lines_and_every_evaluation(caplog):
    """MLflow gets every Trainer log as a curve point; the job's log gets the trend: about 20 loss lines
    for any run length, each evaluation, and the last step."""
    from types import SimpleNamespace

    from spark_sentiment.training.arguments import LogLinesCallback

    callback, args = LogLinesCallback(), SimpleNamespace(logging_steps=10)
    with caplog.at_level("INFO", logger="spark_sentiment.training.arguments"):
        for step in range(10, 701, 10):
            state = SimpleNamespace(is_local_process_zero=True, global_step=min(step, 691), max_steps=691)
            callback.on_log(args, state, None, logs={"loss": 0.5, "learning_rate": 1e-5})
            if step == 350:
                callback.on_log(args, state, None, logs={"eval_loss": 0.4, "eval_accuracy": 0.8})
    lines = [r.getMessage() for r in caplog.records]
    assert 19 <= len([line for line in lines if "loss=" in line]) <= 22, lines
    assert any("eval_accuracy=0.8" in line for line in lines) and lines[-1].startswith("step 691/691:")
