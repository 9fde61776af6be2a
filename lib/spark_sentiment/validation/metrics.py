"""Classification metrics of a scored, labeled DataFrame, computed with Spark aggregations.

Two small jobs, whatever the row count: the confusion counts, and a histogram of P(positive) in 1,000
bins per true label. ROC curve and AUC (trapezoids over the bins, i.e. exact for scores rounded to 1e-3),
the reliability curve and the score histograms are derived from that histogram on the driver.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..core.errors import DataError
from ..core.names import quote

ROC_BINS = 1000
CALIBRATION_BINS = 10
HISTOGRAM_BINS = 20


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def binary_metrics(df: DataFrame, truth: str, predicted: str, score: str, labels: list[str], positive: str) -> dict:
    """Accuracy, precision, recall, F1 (of ``positive``), ROC AUC, confusion matrix, curve data.

    Parameters
    ----------
    df
        One row per review: true label name, predicted label name, probability of the predicted label.
        Rows without a prediction (blank text) are counted as ``unscored`` and left out.
    labels
        The model's label names in id order; exactly two.
    """
    if len(labels) != 2 or positive not in labels:
        raise DataError(f"binary metrics need two labels including {positive!r}, the model has {labels}")
    negative = labels[0] if labels[1] == positive else labels[1]
    t, p, s = F.col(quote(truth)), F.col(quote(predicted)), F.col(quote(score))
    unscored = df.where(p.isNull()).count()
    rows = df.where(p.isNotNull())
    unknown = rows.where(~t.isin(labels)).select(t).limit(1).collect()
    if unknown:
        raise DataError(f"true label {unknown[0][0]!r} in column '{truth}' is not one of the model's labels {labels}")
    counts = {(r[0], r[1]): int(r[2]) for r in rows.groupBy(t, p).count().collect()}
    matrix = [[counts.get((a, b), 0) for b in labels] for a in labels]
    total = sum(map(sum, matrix))
    tp, fn = counts.get((positive, positive), 0), counts.get((positive, negative), 0)
    fp, tn = counts.get((negative, positive), 0), counts.get((negative, negative), 0)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)

    p_positive = F.when(p == positive, s).otherwise(1 - s)
    binned = (
        rows.select((t == positive).alias("is_pos"), p_positive.alias("pp"))
        .groupBy("is_pos", F.least(F.floor(F.col("pp") * ROC_BINS), F.lit(ROC_BINS - 1)).cast("int").alias("bin"))
        .agg(F.count(F.lit(1)).alias("n"), F.sum("pp").alias("sum_pp"))
        .collect()
    )
    pos, neg, sum_pp = [0] * ROC_BINS, [0] * ROC_BINS, [0.0] * ROC_BINS
    for r in binned:
        (pos if r["is_pos"] else neg)[r["bin"]] += int(r["n"])
        sum_pp[r["bin"]] += float(r["sum_pp"])
    roc, auc = _roc(pos, neg)
    return {
        "rows": total,
        "unscored": unscored,
        "accuracy": _ratio(tp + tn, total),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "roc_auc": auc,
        "labels": labels,
        "confusion_matrix": matrix,
        "roc_curve": roc,
        "calibration": _calibration(pos, neg, sum_pp),
        "score_histograms": {positive: _merge(pos, HISTOGRAM_BINS), negative: _merge(neg, HISTOGRAM_BINS)},
    }


def _roc(pos: list[int], neg: list[int]) -> tuple[list[tuple[float, float]], float]:
    """ROC points for thresholds at every bin edge (high to low) and the area under them."""
    total_pos, total_neg = sum(pos), sum(neg)
    points, tp, fp, auc = [(0.0, 0.0)], 0, 0, 0.0
    for i in reversed(range(len(pos))):
        if not pos[i] and not neg[i]:
            continue
        tp, fp = tp + pos[i], fp + neg[i]
        point = (_ratio(fp, total_neg), _ratio(tp, total_pos))
        auc += (point[0] - points[-1][0]) * (point[1] + points[-1][1]) / 2
        points.append(point)
    return points, auc


def _merge(counts: list[int], bins: int) -> list[int]:
    step = len(counts) // bins
    return [sum(counts[i * step : (i + 1) * step]) for i in range(bins)]


def _calibration(pos: list[int], neg: list[int], sum_pp: list[float]) -> list[dict[str, Any]]:
    step = len(pos) // CALIBRATION_BINS
    out = []
    for b in range(CALIBRATION_BINS):
        window = slice(b * step, (b + 1) * step)
        n_pos, n = sum(pos[window]), sum(pos[window]) + sum(neg[window])
        out.append(
            {
                "bin": [b / CALIBRATION_BINS, (b + 1) / CALIBRATION_BINS],
                "count": n,
                "mean_probability": _ratio(sum(sum_pp[window]), n),
                "positive_rate": _ratio(n_pos, n),
            }
        )
    return out
