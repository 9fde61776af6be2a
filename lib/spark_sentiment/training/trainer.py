"""The training job's library side: data -> HF Trainer -> one MLflow run -> registered model version."""

from __future__ import annotations

import logging
import time
from typing import Any

import mlflow
import numpy as np
from pyspark.sql import SparkSession

from ..config.loader import to_flat_dict
from ..core.redaction import config_params, scrub
from ..core.session import is_local
from ..inference import sentences
from ..inference.predictor import length_batches, run_batches, run_logits
from ..inference.runtimes import torch_forward
from ..model import flavor, registry, tracking
from ..model.window import Temperature, encode, special_tokens
from ..monitoring import calibration, distributions, plots
from .config import TrainJobConfig
from .data import TrainingData, TrainingSources, load_training_data
from .distributed import fit_distributed
from .fit import fit
from .precision import bf16_agreement, int8_agreement

log = logging.getLogger(__name__)


def _log_monitoring(log_history: list[dict], probabilities: np.ndarray, labels: list[str]) -> None:
    """The curves PNG, and the eval set's prediction distribution (calibrated, as scoring computes it) that
    scoring runs compare with."""
    figure = plots.training_curves(log_history)
    mlflow.log_figure(figure, "plots/training_curves.png")
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    reference = distributions.from_arrays(predicted, probabilities.max(axis=1))
    mlflow.log_dict(reference, distributions.REFERENCE_ARTIFACT)


def scoring_logits(cfg: TrainJobConfig, model: Any, tokenizer: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The trained model's logits of ``texts`` read as scoring reads them (the scoring window, not the training
    one: a review cut to 128 tokens for training is read at 512 when scored), and each text's token count."""
    window = cfg.scoring_window().clamp(int(getattr(model.config, "max_position_embeddings", 512)))
    token_ids = encode(tokenizer, texts, window)
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
    model.eval()
    # batches of short texts as wide as the fitting passes' sentences, long reviews fewer rows at a time
    batches = length_batches(lengths, cfg.sentences.batch_size, cfg.sentences.batch_size * 128)
    logits = run_logits(torch_forward(model), token_ids, batches, tokenizer.pad_token_id or 0, len(cfg.model.labels))
    return logits, lengths


def calibrate(model: Any, logits: np.ndarray, lengths: np.ndarray, data: TrainingData) -> dict[str, Any]:
    """Fit the temperature (by token count) on the eval rows' scoring logits, record it in the model's config,
    and measure: ECE before and after, and accuracy per source (logged as metrics). Returns the calibration
    record."""
    truth = np.asarray(data.eval["label"], dtype=np.int64)
    temperature = calibration.fit_temperature_by_length(logits, truth, lengths)
    for name, value in temperature.config_attributes().items():
        setattr(model.config, name, value)
    before = calibration.expected_calibration_error(calibration.softmax(logits), truth)
    after = calibration.expected_calibration_error(temperature.probabilities(logits, lengths), truth)
    low, high = temperature.per_row([lengths.min(), lengths.max()])
    record = {
        "temperature": round(temperature.value, 4),
        "temperature_by_length": {key: round(value, 4) for key, value in temperature.to_dict().items()},
        "temperature_range": [round(float(low), 4), round(float(high), 4)],  # at the shortest and longest row
        "ece_before": round(before, 4),
        "ece": round(after, 4),
        "rows": int(len(truth)),
    }
    mlflow.log_metrics(
        {
            "temperature": temperature.value,
            "temperature_slope": temperature.slope,
            "eval_ece_uncalibrated": before,
            "eval_ece": after,
        }
    )
    sources = np.asarray(data.eval_sources)
    if len(set(data.eval_sources)) > 1:
        correct = logits.argmax(axis=1) == truth
        probabilities = temperature.probabilities(logits, lengths)
        names = list(dict.fromkeys(data.eval_sources))
        per_source = {name: float(correct[sources == name].mean()) for name in names}
        mlflow.log_metrics({tracking.metric_name(f"eval_accuracy.{name}"): v for name, v in per_source.items()})
        record["accuracy_per_source"] = {name: round(value, 4) for name, value in per_source.items()}
        ece = calibration.expected_calibration_error
        record["ece_per_source"] = {
            name: round(ece(probabilities[sources == name], truth[sources == name]), 4) for name in names
        }
    return record


def fit_sentence_rule(
    cfg: TrainJobConfig, model: Any, tokenizer: Any, data: TrainingData, probabilities: np.ndarray
) -> dict[str, Any] | None:
    """Fit score.granularity sentence's aggregation on the eval rows (their sentences scored with the trained
    model) and record it in the model's config; None for a model without POSITIVE and NEGATIVE labels."""
    labels = list(cfg.model.labels)
    try:
        sentences.polar_indices(labels)
    except ValueError as exc:
        log.info("no sentence aggregation fitted: %s", exc)
        return None
    texts = list(data.eval["text"])
    prefix, suffix = special_tokens(tokenizer)
    window = cfg.scoring_window().clamp(int(getattr(model.config, "max_position_embeddings", 512)))
    plan = sentences.plan_sentences(tokenizer, texts, window.max_length - len(prefix) - len(suffix), prefix, suffix)
    lengths = np.fromiter((len(p) for p in plan.pieces), dtype=np.int64, count=len(plan.pieces))
    batches = length_batches(lengths, cfg.sentences.batch_size)
    temperature = Temperature.of_config(model.config)
    model.eval()
    piece_p = run_batches(
        torch_forward(model), plan.pieces, batches, tokenizer.pad_token_id or 0, temperature, len(labels)
    )
    sentence_p = plan.sentence_probabilities(piece_p)
    bounds = np.searchsorted(plan.sentence_review, np.arange(len(texts) + 1))
    per_row = [
        (sentence_p[bounds[i] : bounds[i + 1]], plan.weights[bounds[i] : bounds[i + 1]]) for i in range(len(texts))
    ]
    rule = sentences.fit_aggregation(
        probabilities,
        np.asarray(data.eval["label"]),
        per_row,
        labels,
        cfg.sentences.clear_precision,
        cfg.sentences.mixed_rate,
        cfg.sentences.neutral_rate,
    )
    setattr(model.config, sentences.AGGREGATION_ATTRIBUTE, rule.to_dict())
    mlflow.log_params({f"sentence_{key}": value for key, value in rule.to_dict().items() if key != "fitted"})
    mlflow.log_dict(rule.to_dict(), "sentences/aggregation.json")
    return {**rule.to_dict(), "sentences": len(plan.spans)}


def _log_precision(fitted) -> dict[str, Any]:
    """How the training precision was chosen, in the run (param and each candidate's measured rows/s)."""
    choice = fitted.precision
    if choice is None:
        return {}
    mlflow.log_param("train_precision_chosen", choice.chosen)
    mlflow.log_metrics({f"train_probe_rows_per_s_{name}": rate for name, rate in choice.rows_per_s.items()})
    return {"train": choice.as_dict()}


def train_and_register(
    spark: SparkSession, cfg: TrainJobConfig, plan: list[TrainingSources] | None = None
) -> dict[str, Any]:
    """Fine-tune, evaluate, log and register; returns the job summary.

    Parameters
    ----------
    spark
        Session whose Hadoop file systems resolve and read the data paths (any scheme).
    cfg
        Validated training configuration.
    plan
        Sources already resolved by the caller (default: resolved here).

    Returns
    -------
    dict
        ``run_id, model_name, model_version, model_uri, aliases, metrics, train_rows, eval_rows, seconds``.
    """
    started = time.perf_counter()
    tracking.configure(cfg.mlflow, local=is_local(spark))
    request = cfg.registry.request_id
    if request and (done := registry.version_for_request(cfg.registry.name, request)) is not None:
        log.info("request %s already registered %s; nothing to train", request, done.label)
        return {
            "status": "already_registered",
            "model": done.label,
            "model_name": done.name,
            "model_version": done.version,
            "model_uri": done.uri,
            "request_id": request,
            "seconds": round(time.perf_counter() - started, 1),
        }
    data = load_training_data(spark, cfg.data, cfg.model.labels, plan)
    train_ds, eval_ds = data.train, data.eval
    phases = {"data_seconds": time.perf_counter() - started}
    log.info("training on %d rows, evaluating on %d rows", len(train_ds), len(eval_ds))
    with mlflow.start_run() as run:
        mlflow.log_params(config_params(to_flat_dict(cfg)))
        mlflow.log_params({"train_rows": len(train_ds), "eval_rows": len(eval_ds)})
        fit_started = time.perf_counter()
        phases["tracking_seconds"] = fit_started - started - phases["data_seconds"]  # store, run, params
        if cfg.train.num_processes > 1:
            fitted = fit_distributed(cfg, train_ds, eval_ds)
        else:
            # The run is ours (started above), so Trainer's MLflow callback logs into it and does not end it.
            fitted = fit(cfg, train_ds, eval_ds, report_to=["mlflow"])
        # tokenization, trainer.train() (eval after each epoch but the last) and the final eval pass
        phases["fit_seconds"] = time.perf_counter() - fit_started
        log_started = time.perf_counter()
        metrics = {"accuracy": fitted.metrics["eval_accuracy"], "f1": fitted.metrics["eval_f1"]}
        mlflow.log_metrics({"final_accuracy": metrics["accuracy"], "final_f1": metrics["f1"]})
        model, tokenizer = fitted.model, fitted.tokenizer
        logits, lengths = scoring_logits(cfg, model, tokenizer, list(eval_ds["text"]))
        calibrated = calibrate(model, logits, lengths, data)
        probabilities = Temperature.of_config(model.config).probabilities(logits, lengths)
        _log_monitoring(fitted.log_history, probabilities, cfg.model.labels)
        sentence_rule = fit_sentence_rule(cfg, model, tokenizer, data, probabilities)
        pipe = flavor.build_pipeline(model, tokenizer, cfg.model.pipeline_batch_size)
        examples = {text: pipe(text, truncation=True)[0]["label"] for text in flavor.INPUT_EXAMPLE}
        window = cfg.scoring_window().clamp(int(getattr(model.config, "max_position_embeddings", 512)))
        mlflow.log_params({"window": window.strategy, "window_max_length": window.max_length})
        precision = _log_precision(fitted)
        agreement = bf16_agreement(model, tokenizer, list(eval_ds["text"]), window, cfg.train.bf16_check_rows)
        if agreement is not None:
            mlflow.log_metrics({"cpu_bf16_label_agreement": agreement.agreement})
            precision["cpu_bf16_agreement"] = agreement.as_dict()
        cpu_bf16 = agreement.as_dict() if agreement is not None else None
        int8 = int8_agreement(
            model, tokenizer, list(eval_ds["text"]), list(eval_ds["label"]), window, cfg.train.bf16_check_rows
        )
        if int8 is not None:
            mlflow.log_metrics({"cpu_int8_label_agreement": int8.agreement})
            precision["cpu_int8_agreement"] = int8.as_dict()
        cpu_int8 = int8.as_dict() if int8 is not None else None
        _, version = flavor.log_pipeline(
            pipe, cfg.registry.name, window, cpu_bf16=cpu_bf16, cpu_int8=cpu_int8, calibration=calibrated
        )
        if request:
            registry.tag_request(cfg.registry.name, version, request)
            mlflow.set_tag(registry.REQUEST_TAG, request)
        log.info("registered %s version %s (run %s)", cfg.registry.name, version, run.info.run_id)
        aliases = registry.set_aliases(cfg.registry.name, version, cfg.registry.alias, cfg.registry.champion_if_missing)
        phases["log_register_seconds"] = time.perf_counter() - log_started
        seconds = time.perf_counter() - started
        phases = {key: round(value, 1) for key, value in phases.items()}
        mlflow.log_metrics({"job_seconds": seconds, **phases})
        return {
            "status": "succeeded",
            "run_id": run.info.run_id,
            "model": f"{cfg.registry.name}/{version}",
            "model_name": cfg.registry.name,
            "model_version": version,
            "model_uri": f"models:/{cfg.registry.name}/{version}",
            "aliases": aliases,
            "metrics": metrics,
            "labels": list(cfg.model.labels),
            "calibration": calibrated,
            "sentence_aggregation": sentence_rule,
            "examples": examples,
            "train_rows": len(train_ds),
            "eval_rows": len(eval_ds),
            "window": window.to_config(),
            "precision": precision,
            "num_processes": cfg.train.num_processes,
            "seconds": round(seconds, 1),
            "phases": phases,
            "tracking_uri": scrub(mlflow.get_tracking_uri()),
            **({"request_id": request} if request else {}),
        }
