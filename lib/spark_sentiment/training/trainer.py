"""The training job's library side: data -> HF Trainer -> one MLflow run -> registered model version."""

from __future__ import annotations

import logging
import tempfile
import time
from typing import Any

import mlflow
import numpy as np
from pyspark.sql import SparkSession
from transformers import DataCollatorWithPadding, Trainer

from ..config import to_flat_dict
from ..config.train import TrainJobConfig
from ..data.labeled import TrainingSources, load_training_data
from ..evaluation import distributions, plots
from ..model import flavor, registry, tracking
from ..model.base import load_base
from ..redaction import config_params, scrub
from .arguments import training_arguments
from .metrics import classification_metrics

log = logging.getLogger(__name__)


def _log_monitoring(log_history: list[dict], logits: np.ndarray, labels: list[str]) -> None:
    """The curves PNG, and the eval set's prediction distribution that scoring runs compare with."""
    figure = plots.training_curves(log_history)
    mlflow.log_figure(figure, "plots/training_curves.png")
    plots.close(figure)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = exp / exp.sum(axis=1, keepdims=True)
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    reference = distributions.from_arrays(predicted, probabilities.max(axis=1))
    mlflow.log_dict(reference, distributions.REFERENCE_ARTIFACT)


def train_and_register(
    spark: SparkSession | None, cfg: TrainJobConfig, plan: TrainingSources | None = None
) -> dict[str, Any]:
    """Fine-tune, evaluate, log and register; returns the job summary.

    Parameters
    ----------
    spark
        Session used to read Delta/Parquet/table sources (None is enough for aclImdb and hub sources).
    cfg
        Validated training configuration.
    plan
        Sources already resolved by the caller (so a missing path fails before Spark starts).

    Returns
    -------
    dict
        ``run_id, model_name, model_version, model_uri, aliases, metrics, train_rows, eval_rows, seconds``.
    """
    started = time.perf_counter()
    train_ds, eval_ds = load_training_data(spark, cfg.data, cfg.model.labels, plan)
    log.info("training on %d rows, evaluating on %d rows", len(train_ds), len(eval_ds))
    model, tokenizer = load_base(cfg.model.base, cfg.model.labels, cfg.train.max_length, cfg.train.seed)

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["text"], truncation=True, max_length=tokenizer.model_max_length)

    train_tok = train_ds.map(tokenize, batched=True, remove_columns=["text"])
    eval_tok = eval_ds.map(tokenize, batched=True, remove_columns=["text"])

    tracking.configure(cfg.mlflow)
    with tempfile.TemporaryDirectory(prefix="spark-sentiment-train-") as output_dir, mlflow.start_run() as run:
        mlflow.log_params(config_params(to_flat_dict(cfg)))
        mlflow.log_params({"train_rows": len(train_ds), "eval_rows": len(eval_ds)})
        trainer = Trainer(
            model=model,
            args=training_arguments(cfg.train, output_dir),
            train_dataset=train_tok,
            eval_dataset=eval_tok,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=classification_metrics,
        )
        # The run is ours (started above), so Trainer's MLflow callback logs into it and does not end it.
        trainer.train()
        final = trainer.predict(eval_tok, metric_key_prefix="eval")
        metrics = {"accuracy": final.metrics["eval_accuracy"], "f1": final.metrics["eval_f1"]}
        mlflow.log_metrics({"final_accuracy": metrics["accuracy"], "final_f1": metrics["f1"]})
        _log_monitoring(trainer.state.log_history, final.predictions, cfg.model.labels)
        pipe = flavor.build_pipeline(trainer.model, tokenizer, cfg.model.pipeline_batch_size)
        examples = {text: pipe(text, truncation=True)[0]["label"] for text in flavor.INPUT_EXAMPLE}
        info = flavor.log_pipeline(pipe, cfg.registry.name)
        version = str(info.registered_model_version)
        log.info("registered %s version %s (run %s)", cfg.registry.name, version, run.info.run_id)
        aliases = registry.set_aliases(cfg.registry.name, version, cfg.registry.alias, cfg.registry.champion_if_missing)
        seconds = time.perf_counter() - started
        mlflow.log_metric("job_seconds", seconds)
        return {
            "run_id": run.info.run_id,
            "model_name": cfg.registry.name,
            "model_version": version,
            "model_uri": f"models:/{cfg.registry.name}/{version}",
            "aliases": aliases,
            "metrics": metrics,
            "examples": examples,
            "train_rows": len(train_ds),
            "eval_rows": len(eval_ds),
            "seconds": round(seconds, 1),
            "tracking_uri": scrub(mlflow.get_tracking_uri()),
        }
