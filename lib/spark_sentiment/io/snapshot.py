"""The scoring job's input, pinned: a Delta input is read at one version, so the rows scored, the version
recorded for the next incremental run and the change feed all describe the same table state."""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from ..core.errors import DataError
from ..core.names import quote
from .delta import describe_detail, history
from .features import unsupported_features_as_errors
from .tables import TableRef, read_spark, resolve_source


@dataclass(frozen=True)
class Snapshot:
    """A table pinned for one run: where it is and, for Delta, the version read and whether it has a change feed."""

    spark: SparkSession
    source: TableRef
    version: int | None = None  # None: not a Delta table (Parquet files, a non-Delta catalog table)
    change_data_feed: bool = False
    table_id: str | None = None  # Delta's table id (DESCRIBE DETAIL id): the same table under any path or name

    def describe(self) -> str:
        return self.source.describe()

    def _reader(self):
        return self.spark.read.format("delta")

    def _load(self, reader) -> DataFrame:
        location = self.source.location
        return reader.table(location) if self.source.format == "table" else reader.load(location)

    def read(self) -> DataFrame:
        """The rows at the pinned version (all rows for non-Delta inputs)."""
        if self.version is None:
            return read_spark(self.spark, self.source)
        return self._load(self._reader().option("versionAsOf", self.version))

    def read_changes(self, start: int) -> DataFrame:
        """Change Data Feed rows of versions ``start..version`` (lazy; the range is checked when it runs)."""
        reader = (
            self._reader()
            .option("readChangeFeed", "true")
            .option("startingVersion", start)
            .option("endingVersion", self.version)
        )
        return self._load(reader)


def _delta_detail(spark: SparkSession, source: TableRef) -> Row | None:
    """``DESCRIBE DETAIL`` of a Delta source; None for sources without versions (Parquet files, a
    Parquet/Hive catalog table)."""
    if source.format == "table":
        if not spark.catalog.tableExists(source.location):
            raise DataError(f"table {source.location} does not exist in the catalog")
        try:
            detail = describe_detail(spark, source)
        except AnalysisException:
            return None  # a catalog table Delta cannot describe: readable, but no versions
        return detail if str(detail["format"]).lower() == "delta" else None
    return describe_detail(spark, source) if source.format == "delta" else None


def open_input(spark: SparkSession, path: str | None, table: str | None, fmt: str = "auto") -> Snapshot:
    """Resolve and pin the scoring input (``input.path`` or ``input.table``).

    Raises
    ------
    DataError
        Missing path or table, or a path that is neither Delta nor Parquet.
    """
    if table:
        source = resolve_source(spark, table, "table", key="input.table")
    else:
        source = resolve_source(spark, str(path), fmt, key="input.path")
        if source.format not in ("delta", "parquet"):
            raise DataError(f"input.path {path} is {source.format}, expected a Delta table or Parquet files")
    with unsupported_features_as_errors(f"input {source.describe()}"):
        detail = _delta_detail(spark, source)
        if detail is None:
            return Snapshot(spark, source)
        properties = detail["properties"] or {}
        version = int(history(spark, source, 1).select("version").first()["version"])
    cdf = str(properties.get("delta.enableChangeDataFeed", "false")).lower() == "true"
    return Snapshot(spark, source, version, cdf, str(detail["id"]) if detail["id"] else None)


def check_keys(df: DataFrame, keys: list[str], where: str) -> None:
    """Every row must have a non-null, unique key for MERGE to upsert it exactly once.

    Raises
    ------
    DataError
        Names the key columns, how many keys are null or repeated, and one example.
    """
    null_key = reduce(lambda a, b: a | b, [F.col(quote(k)).isNull() for k in keys])
    groups = df.groupBy(*[F.col(quote(k)) for k in keys]).count()
    bad = groups.where((F.col("count") > 1) | null_key)
    if not bad.limit(1).collect():
        return
    counts = bad.agg(
        F.sum(F.when(null_key, F.col("count")).otherwise(0)).alias("null_rows"),
        F.sum(F.when(~null_key, 1).otherwise(0)).alias("repeated"),
        F.first(F.when(~null_key, F.to_json(F.struct(*[F.col(quote(k)) for k in keys]))), ignorenulls=True).alias("e"),
    ).first()
    names = ", ".join(keys)
    if counts["null_rows"]:
        raise DataError(f"{where}: {counts['null_rows']} rows have a null key ({names}); every row needs a key")
    raise DataError(
        f"{where}: {counts['repeated']} keys ({names}) appear more than once, e.g. {counts['e']}; "
        "keys must be unique (deduplicate the input first)"
    )
