"""Write scored rows to Delta: overwrite, append, or merge (upsert on key columns). One commit per write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..errors import DataError


@dataclass(frozen=True)
class Target:
    path: str | None = None
    table: str | None = None

    def describe(self) -> str:
        return f"table {self.table}" if self.table else f"path {self.path}"


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def target_exists(spark: SparkSession, target: Target) -> bool:
    """Whether the output already exists as a Delta table (a non-Delta one is an error)."""
    if target.table:
        if not spark.catalog.tableExists(target.table):
            return False
        try:
            DeltaTable.forName(spark, target.table)
        except AnalysisException:
            raise DataError(f"output table {target.table} exists but is not a Delta table") from None
        return True
    location = str(target.path)
    if DeltaTable.isDeltaTable(spark, location):
        return True
    if "://" in location and not location.startswith("file:"):
        return False  # object stores: only the Delta log is checked (listing them needs the Hadoop FS API)
    path = Path(location.removeprefix("file:"))
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return False
    raise DataError(f"output path {target.path} exists but is not a Delta table")


def _delta_table(spark: SparkSession, target: Target) -> DeltaTable:
    return DeltaTable.forName(spark, target.table) if target.table else DeltaTable.forPath(spark, str(target.path))


def write_table(df: DataFrame, target: Target, mode: str) -> None:
    """Plain Delta write (``overwrite``/``append``) to a path or a catalog table."""
    writer = df.write.format("delta").mode(mode)
    if target.table:
        writer.saveAsTable(target.table)
    else:
        writer.save(str(target.path))


def write_scored(df: DataFrame, target: Target, mode: str, key_columns: list[str]) -> dict[str, int]:
    """Write ``df`` to ``target``; returns Delta's operation metrics (rows inserted/updated/...).

    ``merge`` upserts on ``key_columns``: a matched row is replaced, a new one inserted, so rerunning the same
    input never duplicates a row. A missing target is created by the first write in every mode.
    """
    spark = df.sparkSession
    exists = target_exists(spark, target)
    if not exists or mode in ("overwrite", "append"):
        write_table(df, target, mode if exists else "overwrite")
    else:
        condition = None
        for key in key_columns:
            clause = F.col(f"t.{_quote(key)}") == F.col(f"s.{_quote(key)}")
            condition = clause if condition is None else condition & clause
        (
            _delta_table(spark, target)
            .alias("t")
            .merge(df.alias("s"), condition)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
    last = _delta_table(spark, target).history(1).select("version", "operation", "operationMetrics").first()
    metrics = {k: int(v) for k, v in (last["operationMetrics"] or {}).items() if str(v).isdigit()}
    return {"version": int(last["version"]), **metrics}
