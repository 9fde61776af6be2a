"""Offline evaluation metrics for the Trainer (scikit-learn; ``evaluate.load`` needs the hub)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def classification_metrics(eval_pred: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Accuracy and F1 (binary for two labels, macro otherwise) from Trainer logits and label ids."""
    logits, labels = eval_pred
    predictions = np.asarray(logits).argmax(axis=-1)
    average = "binary" if np.asarray(logits).shape[-1] == 2 else "macro"
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1_score(labels, predictions, average=average)),
    }
