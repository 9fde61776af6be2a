"""Classification metrics of a scored, labeled DataFrame, computed with Spark aggregations.

Two labels: a few small jobs, whatever the row count: the confusion counts, a histogram of P(positive) in
1,000 bins per true label, and the top-label calibration bins. More labels (:func:`multiclass_metrics`): the
confusion counts, one histogram per label of its probability (one-vs-rest), and the calibration bins.
ROC curve and AUC (trapezoids over the bins, i.e. exact for scores rounded to 1e-3),
the reliability curve and the score histograms are derived from that histogram on the driver.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..core.errors import DataError
from ..core.names import quote

ROC_BINS = 1000
CALIBRATION_BINS = 10
HISTOGRAM_BINS = 20
ECE_BINS = 15  # as monitoring.calibration's


def _confusion(
    df: DataFrame, truth: str, t: Column, p: Column, labels: list[str]
) -> tuple[DataFrame, int, dict[tuple[str, str], int], list[list[int]], int]:
    """The scored rows, the unscored count, ``(true, predicted)`` counts, the confusion matrix over ``labels``
    (rows = true) and its total; a true label outside ``labels`` is refused."""
    unscored = df.where(p.isNull()).count()
    rows = df.where(p.isNotNull())
    unknown = rows.where(~t.isin(labels)).select(t).limit(1).collect()
    if unknown:
        raise DataError(f"true label {unknown[0][0]!r} in column '{truth}' is not one of the model's labels {labels}")
    counts = {(r[0], r[1]): int(r[2]) for r in rows.groupBy(t, p).count().collect()}
    matrix = [[counts.get((a, b), 0) for b in labels] for a in labels]
    return rows, unscored, counts, matrix, sum(map(sum, matrix))


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
    rows, unscored, counts, matrix, total = _confusion(df, truth, t, p, labels)
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
        "ece": top_label_ece(rows, t, p, s, total),
        "labels": labels,
        "confusion_matrix": matrix,
        "roc_curve": roc,
        "calibration": _calibration(pos, neg, sum_pp),
        "score_histograms": {positive: _merge(pos, HISTOGRAM_BINS), negative: _merge(neg, HISTOGRAM_BINS)},
    }


def top_label_ece(rows: DataFrame, truth: Column, predicted: Column, score: Column, total: int) -> float:
    """Expected calibration error of the predicted label's probability: over :data:`ECE_BINS` equal-width bins,
    the row-weighted mean of ``|accuracy - mean probability|`` (one Spark job)."""
    if not total:
        return 0.0
    binned = (
        rows.select(
            F.least(F.floor(score * ECE_BINS), F.lit(ECE_BINS - 1)).cast("int").alias("bin"),
            score.alias("s"),
            (truth == predicted).cast("int").alias("hit"),
        )
        .groupBy("bin")
        .agg(F.sum("s").alias("sum_s"), F.sum("hit").alias("hits"))
        .collect()
    )
    return sum(abs(float(r["hits"]) - float(r["sum_s"])) for r in binned) / total


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


def multiclass_metrics(
    df: DataFrame, truth: str, predicted: str, score: str, probabilities: str, labels: list[str]
) -> dict:
    """Metrics of a model with more than two labels: accuracy, per-class precision/recall/F1 and their macro
    means (``precision``, ``recall``, ``f1``), one-vs-rest ROC AUC per class and its macro mean (``roc_auc``),
    the confusion matrix, the top-label expected calibration error (``ece``) and a reliability curve per class.

    Parameters
    ----------
    df
        One row per review: true label name, predicted label name, its probability, and the map of every
        label's probability. Rows without a prediction (blank text) are counted as ``unscored`` and left out.
    labels
        The model's label names in id order.
    """
    t, p, s = F.col(quote(truth)), F.col(quote(predicted)), F.col(quote(score))
    rows, unscored, _, matrix, total = _confusion(df, truth, t, p, labels)
    per_class = {}
    for i, name in enumerate(labels):
        tp = matrix[i][i]
        precision = _ratio(tp, sum(matrix[j][i] for j in range(len(labels))))
        recall = _ratio(tp, sum(matrix[i]))
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": sum(matrix[i])}
    # one pass: each row's probability of every label, binned, split by whether that label is the true one
    entries = F.explode(F.map_entries(F.col(quote(probabilities)))).alias("entry")
    one_vs_rest = (
        rows.select(t.alias("truth"), entries)
        .select(
            F.col("entry.key").alias("label"),
            (F.col("truth") == F.col("entry.key")).alias("is_true"),
            F.col("entry.value").alias("pk"),
        )
        .groupBy(
            "label", "is_true", F.least(F.floor(F.col("pk") * ROC_BINS), F.lit(ROC_BINS - 1)).cast("int").alias("bin")
        )
        .agg(F.count(F.lit(1)).alias("n"), F.sum("pk").alias("sum_p"))
        .collect()
    )
    hist = {name: ([0] * ROC_BINS, [0] * ROC_BINS, [0.0] * ROC_BINS) for name in labels}
    for r in one_vs_rest:
        if r["label"] in hist:
            pos, neg, sums = hist[r["label"]]
            (pos if r["is_true"] else neg)[r["bin"]] += int(r["n"])
            sums[r["bin"]] += float(r["sum_p"])
    roc_auc = {name: _roc(pos, neg)[1] for name, (pos, neg, _) in hist.items()}
    return {
        "rows": total,
        "unscored": unscored,
        "accuracy": _ratio(sum(matrix[i][i] for i in range(len(labels))), total),
        "precision": sum(c["precision"] for c in per_class.values()) / len(labels),
        "recall": sum(c["recall"] for c in per_class.values()) / len(labels),
        "f1": sum(c["f1"] for c in per_class.values()) / len(labels),
        "roc_auc": sum(roc_auc.values()) / len(labels),
        "ece": top_label_ece(rows, t, p, s, total),
        "labels": labels,
        "per_class": {name: {**per_class[name], "roc_auc": roc_auc[name]} for name in labels},
        "confusion_matrix": matrix,
        "calibration_per_class": {name: _calibration(pos, neg, sums) for name, (pos, neg, sums) in hist.items()},
    }
