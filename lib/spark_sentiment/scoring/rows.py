"""Score a DataFrame once: spread it over the cluster's cores, label it, materialise it, count it."""

from __future__ import annotations

from dataclasses import replace

from pyspark.sql import DataFrame

from ..inference.columns import label_columns
from ..inference.engines import ScoreFn
from .progress import watch
from .stats import RunStats, statistics


def spread(df: DataFrame, partitions: int | None) -> DataFrame:
    """Repartition to ``partitions``; by default only lift a table with fewer partitions than the cluster has
    cores (a small or ``limit``-ed table is often one partition, which would score on one core)."""
    if partitions:
        return df.repartition(partitions)
    try:
        cores = df.sparkSession.sparkContext.defaultParallelism
        current = df.rdd.getNumPartitions()
    except AttributeError:  # Spark Connect: no SparkContext or RDDs on the client (score.partitions sets it)
        return df
    return df.repartition(cores) if current < cores else df


def score_rows(
    df: DataFrame,
    score: ScoreFn,
    model_label: str,
    text_columns: list[str],
    partitions: int | None,
    progress_seconds: float = 0,
    what: str = "scoring",
) -> tuple[DataFrame, RunStats]:
    """Label ``df`` and materialise it: the model runs exactly once per row, whatever reads it after.
    Progress is logged every ``progress_seconds`` (0: not) while the model runs."""
    scored = label_columns(spread(df, partitions), score, model_label, text_columns)
    # A persisted plan is not enough: Delta's MERGE re-plans its source and missed the cache (3,000 rows were
    # scored twice). A checkpoint cuts the lineage, so the write cannot re-run the model.
    counter = getattr(score, "rows", None)  # texts the native engine scored so far, if it counts them
    with watch(df.sparkSession, what, progress_seconds, counter, len(text_columns)) as samples:
        scored = scored.localCheckpoint(eager=True)
    return scored, replace(statistics(scored, text_columns), progress=tuple(samples))
