"""Land reviews from any supported source (Parquet, Delta, aclImdb folder, hub) in a Delta table."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from .delta import write_table
from .tables import TableRef, read_aclimdb, read_hf, read_spark, resolve_source


def read_reviews(spark: SparkSession, source: str, split: str | None = None, limit: int | None = None) -> DataFrame:
    """All columns of ``source`` (a split of it when given) as a Spark DataFrame, at most ``limit`` rows."""
    resolved = resolve_source(source, "auto", split, key="--source")
    if resolved.format == "aclimdb":
        df = spark.createDataFrame(read_aclimdb(resolved.location))
    elif resolved.format == "hf":
        df = spark.createDataFrame(read_hf(resolved.location, resolved.split))
    else:
        df = read_spark(spark, resolved)
    return df.limit(limit) if limit else df


def ingest(
    spark: SparkSession,
    source: str,
    target: TableRef,
    split: str | None = None,
    limit: int | None = None,
    mode: str = "overwrite",
) -> int:
    """Write ``source`` into the Delta ``target``; returns the number of rows written."""
    write_table(read_reviews(spark, source, split, limit), target, mode)
    return read_spark(spark, target).count()
