"""Drift of a scoring run: its prediction distribution against the one the model version showed on its
eval set at training time (population stability index on labels and on scores)."""

from __future__ import annotations

import logging
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from ..model.registry import ResolvedModel, training_run_id
from .distributions import REFERENCE_ARTIFACT, compare

log = logging.getLogger(__name__)


def reference_distribution(resolved: ResolvedModel) -> dict[str, Any] | None:
    """The eval-set distribution logged with the model's training run, or None (older model, local path)."""
    run_id = training_run_id(resolved)
    if run_id is None:
        return None
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{REFERENCE_ARTIFACT}")
    except (MlflowException, OSError):
        return None


def judge(reference: dict[str, Any] | None, current: dict[str, Any], threshold: float, min_rows: int) -> dict[str, Any]:
    """``{"label_psi", "score_psi", "drifted"}`` for one text column, or why it was not judged."""
    if reference is None:
        return {"drifted": None, "reason": "the model has no reference distribution"}
    if current["rows"] < min_rows:
        return {"drifted": None, "reason": f"{current['rows']} scored rows, fewer than monitor.min_rows={min_rows}"}
    result = compare(reference, current)
    return {**result, "drifted": max(result.values()) > threshold}
