"""Land reviews from any supported source (Parquet, Delta, aclImdb folder, hub) in a Delta table."""

from __future__ import annotations

import sys
from typing import Sequence

from pyspark.sql import DataFrame, SparkSession

from ..config.cli import CommandParser, run_command
from .delta import write_table
from .tables import TableRef, read_aclimdb, read_hf, read_spark, resolve_source


def read_reviews(spark: SparkSession, source: str, split: str | None = None, limit: int | None = None) -> DataFrame:
    """All columns of ``source`` (a split of it when given) as a Spark DataFrame, at most ``limit`` rows."""
    resolved = resolve_source(spark, source, "auto", split, key="--source")
    if resolved.format == "aclimdb":
        df = spark.createDataFrame(read_aclimdb(spark, resolved.location))
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


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``spark-sentiment-ingest`` (also ``jobs/ingest.py``): flags only, no config file
    (one copy whose few inputs are all named on the command line); runs on the commands' one runner (one
    scrubbed ``error:`` line and exit 2 on bad input, the JSON summary last on stdout)."""
    parser = CommandParser(description="Land reviews in a Delta table.")
    parser.add_argument("--source", required=True, help="Parquet/Delta path, aclImdb folder, table or hf:<dataset>")
    parser.add_argument("--split", help="split inside a folder of splits (e.g. unsup) or of a hub dataset")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--table", help="catalog table to write")
    target.add_argument("--path", help="Delta path to write")
    parser.add_argument("--limit", type=int, help="keep at most this many rows")
    parser.add_argument("--mode", choices=["overwrite", "append"], default="overwrite")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))

    def body() -> dict[str, object]:
        from ..core.session import get_spark

        spark = get_spark("spark-sentiment-ingest")
        rows = ingest(spark, args.source, TableRef.of(args.path, args.table), args.split, args.limit, args.mode)
        return {"rows": rows, "target": args.table or args.path}

    return run_command(body)
