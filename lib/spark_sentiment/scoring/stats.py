"""Statistics of one scoring run over the materialised rows: counts and prediction distributions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame

from ..inference.columns import label_column, score_column
from ..monitoring.distributions import SCORE_BINS, from_counts, label_bin_counts, label_totals


@dataclass(frozen=True)
class ColumnStats:
    """One text column: rows labeled, rows left null (blank text), label counts and the distribution."""

    scored: int
    null_texts: int
    label_counts: dict[str, int]
    distribution: dict[str, Any]


@dataclass(frozen=True)
class RunStats:
    rows: int
    columns: dict[str, ColumnStats] = field(default_factory=dict)
    progress: tuple = ()  # progress.Sample while the model ran (for the MLflow metric history)
    precision: tuple = ()  # the precision choices workers made (rows.precision_of)


def statistics(scored: DataFrame, text_columns: list[str]) -> RunStats:
    """Rows, scored rows, label counts and the label/score distribution per text column: one Spark job
    (one pass over the checkpointed rows) for all of them."""
    pairs = [(label_column(c), score_column(c)) for c in text_columns]
    counts = label_bin_counts(scored, pairs, SCORE_BINS)
    rows = sum(n for _, _, n in counts[0]) if counts else scored.count()
    columns = {}
    for c, found in zip(text_columns, counts):
        labeled = [(label, b, n) for label, b, n in found if label is not None]
        label_counts = label_totals(labeled)
        scored_rows = sum(label_counts.values())
        columns[c] = ColumnStats(
            scored=scored_rows,
            null_texts=rows - scored_rows,
            label_counts=label_counts,
            distribution=from_counts(labeled, SCORE_BINS),
        )
    return RunStats(rows, columns)
