"""Score a DataFrame once: spread it over the cluster's cores, label it, materialise it, count it."""

from __future__ import annotations

from dataclasses import replace

from pyspark import StorageLevel
from pyspark.sql import DataFrame

from ..inference.columns import label_columns
from ..inference.engines import ScoreFn, spark_context
from .progress import Counters, watch
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

    Progress is logged every ``progress_seconds`` (0: not) while the model runs. For it the spread input is
    first cached and counted by a job of its own (rows to score known; the scoring job then reads the cached
    rows in one stage, so its tasks are the scoring tasks), and uncached when the scored rows are kept."""
    source = spread(df, partitions)
    total_rows, cached_here = None, False
    if progress_seconds > 0 and spark_context(df.sparkSession) is not None:
        cached_here = source.storageLevel == StorageLevel.NONE  # a caller's cache is the caller's to drop
        if cached_here:
            source = source.persist(StorageLevel.MEMORY_AND_DISK)
        total_rows = source.count()
    try:
        scored = label_columns(source, score, model_label, text_columns)
        # A persisted plan is not enough: Delta's MERGE re-plans its source and missed the cache (3,000 rows
        # were scored twice). A checkpoint cuts the lineage, so the write cannot re-run the model.
        counters = Counters.of(score.reports, len(text_columns))
        with watch(df.sparkSession, what, progress_seconds, counters, total_rows) as samples:
            scored = scored.localCheckpoint(eager=True)
    finally:
        if cached_here:
            source.unpersist()
    return scored, replace(statistics(scored, text_columns), progress=tuple(samples), precision=precision_of(score))


def precision_of(score: ScoreFn) -> tuple[dict, ...]:
    """The precision each kind of worker chose, with the probe's rows/s (native engine; empty where the
    engine makes no choice or its accumulator is out of reach, as under Spark Connect)."""
    choices = score.reports.choices
    if choices is None:
        return ()
    return tuple(sorted(choices.value.values(), key=lambda record: -record["tasks"]))
