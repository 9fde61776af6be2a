"""Distributions of predictions, aggregated by Spark, and the population stability index between two.

A distribution here is small and JSON-able: label fractions, and the histogram of the score (the
probability of the predicted label) over fixed bins. Training stores one for the eval set with the model
version (``monitoring/reference.json`` in its run); scoring runs compare theirs with it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..core.names import quote

SCORE_BINS = 10  # the score of a 2-class model lies in [0.5, 1]; bins span [0, 1] so any model fits
REFERENCE_ARTIFACT = "monitoring/reference.json"


def _bin(score: Column, bins: int) -> Column:
    return F.least(F.floor(score * bins), F.lit(bins - 1)).cast("int")


def label_bin_counts(
    df: DataFrame, columns: list[tuple[str, str]], bins: int = SCORE_BINS
) -> list[list[tuple[str | None, int | None, int]]]:
    """``(label, score bin, rows)`` counts for each ``(label column, score column)`` pair, rows with a null
    label included (as ``(None, None, n)``), so each pair's counts add up to the rows of ``df``. One Spark
    job (one pass over ``df``) for all pairs."""
    entries = [
        F.struct(
            F.lit(i).alias("pair"),
            F.col(quote(label)).alias("label"),
            F.when(F.col(quote(label)).isNotNull(), _bin(F.col(quote(score)), bins)).alias("bin"),
        )
        for i, (label, score) in enumerate(columns)
    ]
    rows = df.select(F.explode(F.array(*entries)).alias("x")).groupBy("x.pair", "x.label", "x.bin").count().collect()
    counts: list[list[tuple[str | None, int | None, int]]] = [[] for _ in columns]
    for r in rows:
        counts[int(r["pair"])].append((r["label"], None if r["bin"] is None else int(r["bin"]), int(r["count"])))
    return counts


def label_totals(counts: list[tuple[str, int, int]]) -> dict[str, int]:
    """Rows per label of ``(label, bin, count)`` triples, by label name."""
    labels: dict[str, int] = {}
    for label, _, count in counts:
        labels[label] = labels.get(label, 0) + count
    return dict(sorted(labels.items()))


def from_counts(counts: list[tuple[str, int, int]], bins: int = SCORE_BINS) -> dict[str, Any]:
    """Build a distribution from ``(label, bin, count)`` triples."""
    total = sum(c for _, _, c in counts)
    labels = label_totals(counts)
    histogram = [0] * bins
    for _, index, count in counts:
        histogram[index] += count
    return {
        "rows": total,
        "labels": {k: v / total for k, v in labels.items()} if total else {},
        "score_histogram": [h / total for h in histogram] if total else [0.0] * bins,
        "score_bins": bins,
    }


def from_arrays(labels: list[str], scores: np.ndarray, bins: int = SCORE_BINS) -> dict[str, Any]:
    """The same distribution from in-memory predictions (the training job's eval set)."""
    index = np.minimum(np.floor(np.asarray(scores) * bins).astype(int), bins - 1)
    counts: dict[tuple[str, int], int] = {}
    for label, i in zip(labels, index):
        counts[(label, int(i))] = counts.get((label, int(i)), 0) + 1
    return from_counts([(label, i, c) for (label, i), c in counts.items()], bins)


def psi(expected: list[float], actual: list[float], floor: float = 1e-4) -> float:
    """Population stability index: sum((a - e) * ln(a / e)); empty cells count as ``floor``.
    Rule of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 drift."""
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(e, floor), max(a, floor)
        total += (a - e) * math.log(a / e)
    return total


def compare(reference: dict[str, Any], current: dict[str, Any]) -> dict[str, float]:
    """PSI of the label fractions and of the score histograms."""
    names = sorted(set(reference["labels"]) | set(current["labels"]))
    label_psi = psi([reference["labels"].get(n, 0.0) for n in names], [current["labels"].get(n, 0.0) for n in names])
    score_psi = psi(reference["score_histogram"], current["score_histogram"])
    return {"label_psi": round(label_psi, 4), "score_psi": round(score_psi, 4)}
