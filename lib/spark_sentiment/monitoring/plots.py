"""Figures logged to MLflow (PNG): training curves, and the evaluation job's four plots.

Every plot is drawn from small aggregates (per-step logs, confusion counts, binned histograms), never
from per-row predictions.
"""

from __future__ import annotations

from typing import Any

# Figures are built with matplotlib's object API, not pyplot: no backend is chosen or changed (a notebook that
# imports this package keeps its inline plots) and nothing is held by pyplot's figure registry.
from matplotlib.figure import Figure


def training_curves(log_history: list[dict[str, Any]]) -> Figure:
    """Training loss per logged step, and eval loss/accuracy/F1 per evaluation (from ``Trainer.state``)."""
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    steps = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [h for h in log_history if "eval_loss" in h]
    if steps:
        left.plot(*zip(*steps), label="train loss")
    if evals:
        left.plot([h["step"] for h in evals], [h["eval_loss"] for h in evals], "o-", label="eval loss")
        for key in ("eval_accuracy", "eval_f1"):
            if all(key in h for h in evals):
                right.plot([h["step"] for h in evals], [h[key] for h in evals], "o-", label=key.removeprefix("eval_"))
    left.set(xlabel="step", ylabel="loss", title="Loss")
    right.set(xlabel="step", ylabel="metric", title="Evaluation", ylim=(0, 1))
    for axis in (left, right):
        axis.legend(loc="best")
        axis.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_matrix(matrix: list[list[int]], labels: list[str]) -> Figure:
    """Counts, rows = true label, columns = predicted label."""
    fig = Figure(figsize=(4.5, 4))
    axis = fig.subplots()
    image = axis.imshow(matrix, cmap="Blues")
    axis.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels)
    axis.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axis.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    fig.colorbar(image, ax=axis)
    fig.tight_layout()
    return fig


def roc_curve(points: list[tuple[float, float]], auc: float) -> Figure:
    fig = Figure(figsize=(4.5, 4))
    axis = fig.subplots()
    axis.plot([p[0] for p in points], [p[1] for p in points], label=f"model (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    axis.legend(loc="lower right")
    fig.tight_layout()
    return fig


def calibration(bins: list[dict[str, float]]) -> Figure:
    """Mean predicted positive probability vs observed positive rate per probability bin."""
    fig = Figure(figsize=(4.5, 4))
    axis = fig.subplots()
    filled = [b for b in bins if b["count"]]
    axis.plot([b["mean_probability"] for b in filled], [b["positive_rate"] for b in filled], "o-", label="model")
    axis.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    axis.set(xlabel="mean predicted P(positive)", ylabel="observed positive rate", title="Reliability")
    axis.legend(loc="upper left")
    fig.tight_layout()
    return fig


def score_histogram(histograms: dict[str, list[int]], bins: int) -> Figure:
    """P(positive) histogram per true label."""
    fig = Figure(figsize=(5, 4))
    axis = fig.subplots()
    edges = [i / bins for i in range(bins)]
    for label, counts in histograms.items():
        axis.bar(edges, counts, width=1 / bins, align="edge", alpha=0.5, label=f"true {label}")
    axis.set(xlabel="predicted P(positive)", ylabel="reviews", title="Scores by true label")
    axis.legend(loc="upper center")
    fig.tight_layout()
    return fig
