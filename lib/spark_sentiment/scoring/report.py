"""Finish a scoring run's summary (counts, drift, timing) and log it as one MLflow run."""

from __future__ import annotations

import logging
from typing import Any

import mlflow

from ..config.loader import to_flat_dict
from ..core.redaction import config_params, scrub
from ..model.tracking import metric_name
from ..monitoring.drift import judge
from .config import ScoreJobConfig
from .progress import samples_as_metrics
from .result import ScoreSummary
from .stats import RunStats

log = logging.getLogger(__name__)


def _drift(cfg: ScoreJobConfig, reference: dict | None, stats: RunStats) -> dict[str, dict]:
    """Judge each text column's predictions against the model's eval-set distribution; warn when drifted."""
    drift = {}
    for column, column_stats in stats.columns.items():
        judged = judge(reference, column_stats.distribution, cfg.monitor.psi_threshold, cfg.monitor.min_rows)
        drift[column] = judged
        if judged.get("drifted"):
            log.warning(
                "drift in %s: label PSI %.3f, score PSI %.3f (threshold %.2f) against the model's eval set",
                column,
                judged["label_psi"],
                judged["score_psi"],
                cfg.monitor.psi_threshold,
            )
    return drift


def add_stats(summary: ScoreSummary, cfg: ScoreJobConfig, stats: RunStats | None, reference: dict | None) -> None:
    """Row counts, label counts, distributions and drift of the scored rows."""
    if stats is None:
        return
    columns = stats.columns
    summary.rows_in = stats.rows
    summary.rows_scored = sum(c.scored for c in columns.values())
    summary.null_texts = sum(c.null_texts for c in columns.values())
    summary.label_counts = {c: v.label_counts for c, v in columns.items()}
    summary.distributions = {c: v.distribution for c, v in columns.items()}
    summary.drift = _drift(cfg, reference, stats) if columns else {}
    summary.drifted = any(d.get("drifted") for d in summary.drift.values())
    summary.precision = [dict(record) for record in stats.precision]


def log_run(cfg: ScoreJobConfig, summary: ScoreSummary, progress: tuple = ()) -> None:
    """One MLflow run with the config, the counts, drift and label metrics, the progress samples as metric
    histories, tags and the summary JSON."""
    summary.model_uri, summary.input, summary.output = (
        scrub(summary.model_uri),
        scrub(summary.input),
        scrub(summary.output),
    )
    with mlflow.start_run(run_name=f"score {summary.output}") as run:
        mlflow.log_params(config_params(to_flat_dict(cfg)))
        mlflow.log_params({"model": summary.model, "input": summary.input, "output": summary.output})
        numbers = ("rows_in", "rows_scored", "null_texts", "seconds", "rows_per_second", "write_attempts")
        numbers += ("rows_inserted", "rows_updated", "rows_deleted")
        metrics: dict[str, Any] = {k: getattr(summary, k) for k in numbers if getattr(summary, k) is not None}
        for column, judged in summary.drift.items():
            psis = {k: judged[k] for k in ("label_psi", "score_psi") if k in judged}
            metrics.update({metric_name(f"drift.{column}.{k}"): value for k, value in psis.items()})
        for column, counts in summary.label_counts.items():
            metrics.update({metric_name(f"label_count.{column}.{label}"): n for label, n in counts.items()})
        if summary.precision:  # the choice most tasks ran with, and its probe's rows/s per candidate
            main = summary.precision[0]
            mlflow.log_param("precision_chosen", ",".join(sorted({r["chosen"] for r in summary.precision})))
            metrics.update({f"probe_rows_per_s_{name}": rate for name, rate in main["rows_per_s"].items()})
        mlflow.log_metrics(metrics)
        for step, values in samples_as_metrics(list(progress)):
            mlflow.log_metrics(values, step=step)
        tags = {"job": "score", "engine": summary.engine, "model": summary.model, "status": summary.status}
        mlflow.set_tags({**tags, "drifted": str(summary.drifted).lower()})
        summary.mlflow_run_id = run.info.run_id
        mlflow.log_dict(summary.as_dict(), "summary.json")
