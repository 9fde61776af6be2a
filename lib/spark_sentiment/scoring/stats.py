"""Statistics of one scoring run over the materialised rows: counts and prediction distributions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..core.names import quote
from ..inference.columns import label_column, score_column
from ..monitoring.distributions import distribution


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


def statistics(scored: DataFrame, text_columns: list[str]) -> RunStats:
    """Rows, scored rows, label counts and the label/score distribution per text column (small jobs over
    the checkpointed rows)."""
    labels = {c: F.col(quote(label_column(c))) for c in text_columns}
    counts = [F.count(label).alias(f"scored{i}") for i, label in enumerate(labels.values())]
    row = scored.agg(F.count(F.lit(1)).alias("rows"), *counts).first()
    per_label = (
        scored.select(
            F.explode(
                F.array(*[F.struct(F.lit(c).alias("column"), label.alias("label")) for c, label in labels.items()])
            ).alias("x")
        )
        .where(F.col("x.label").isNotNull())
        .groupBy("x.column", "x.label")
        .count()
        .collect()
    )
    rows = int(row["rows"])
    columns = {}
    for i, c in enumerate(text_columns):
        scored_rows = int(row[f"scored{i}"])
        columns[c] = ColumnStats(
            scored=scored_rows,
            null_texts=rows - scored_rows,
            label_counts={r["label"]: int(r["count"]) for r in per_label if r["column"] == c},
            distribution=distribution(scored, label_column(c), score_column(c)),
        )
    return RunStats(rows, columns)
