"""Where review tables live and how to read them: :class:`TableRef` is the one type for "a path or a table".

A source string (Delta, Parquet, a catalog table, the aclImdb folder layout, ``hf:<dataset>``) is resolved
through the Hadoop file system of its scheme (:mod:`.fs`): object stores, HDFS, DBFS and local paths alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import pandas as pd
from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..core.errors import DataError
from ..core.names import is_table_identifier, quote
from .fs import Paths, data_paths, join, suffix

Format = Literal["delta", "parquet", "aclimdb", "hf", "table"]


@dataclass(frozen=True)
class TableRef:
    """A readable or writable table of reviews: a path (Delta, Parquet, an aclImdb folder), a catalog table
    (``format="table"``) or a hub dataset (``format="hf"``, with its split)."""

    location: str
    format: Format = "delta"
    split: str | None = None  # the hub split for ``hf`` sources

    @classmethod
    def of(cls, path: str | None = None, table: str | None = None) -> TableRef:
        """A Delta output or input named by config: ``table`` when set, else ``path``."""
        if table:
            return cls(table, "table")
        if not path:
            raise ValueError("a table reference needs a path or a table name")  # configs validate this first
        return cls(str(path), "delta")

    @property
    def table(self) -> str | None:
        """The catalog table name, or None for paths."""
        return self.location if self.format == "table" else None

    @property
    def path(self) -> str | None:
        """The storage path, or None for catalog tables and hub datasets."""
        return None if self.format in ("table", "hf") else self.location

    def sql_name(self) -> str:
        """How SQL names it: the catalog name as written, or ``delta.`path``` (a backtick inside doubled)."""
        if self.format == "table":
            return self.location
        return f"{self.format}.{quote(self.location)}"

    def describe(self) -> str:
        if self.format == "table":
            return f"table {self.location}"
        suffix = f" (split {self.split})" if self.split and self.format == "hf" else ""
        return f"{self.format}:{self.location}{suffix}"


def is_table_name(paths: Paths, text: str) -> bool:
    """True for ``name``, ``db.name`` or ``catalog.db.name`` (backticks allowed) that is not an existing path."""
    return is_table_identifier(text) and not paths.exists(text)


def _detect_single(paths: Paths, path: str) -> Format | None:
    if paths.is_file(path):
        return "parquet" if suffix(path) == ".parquet" else None
    if paths.is_dir(join(path, "_delta_log")):
        return "delta"
    if paths.is_dir(join(path, "pos")) and paths.is_dir(join(path, "neg")):
        return "aclimdb"
    if any(e.name.endswith(".parquet") and not e.is_dir for e in paths.children(path)):
        return "parquet"
    return None


def _location(paths: Paths, text: str) -> str:
    """What to record for a path: as written when it has a scheme; otherwise qualified against the session's
    default file system (a local path becomes absolute, ``/mnt/x`` on Databricks becomes ``dbfs:/mnt/x``)."""
    if "://" in text or text.startswith(("file:", "dbfs:")):
        return text.rstrip("/") or text
    qualified = paths.qualify(text)
    return qualified.removeprefix("file:") if qualified.startswith("file:/") else qualified


def resolve_source(
    spark: SparkSession, text: str, fmt: str = "auto", split: str | None = None, key: str = "data.path"
) -> TableRef:
    """Resolve one source string; with ``split`` look for that split inside a folder of splits.

    Paths are checked through the Hadoop file system of their scheme (``s3a://``, ``abfss://``, ``file:``,
    a local path, ...), so object stores work exactly like local folders.

    Raises
    ------
    DataError
        The path does not exist, or holds no recognizable table (the message names ``key``).
    """
    if fmt == "hf" or (fmt == "auto" and text.startswith("hf:")):
        return TableRef(text.removeprefix("hf:"), "hf", split)
    paths = data_paths(spark)
    if fmt == "table" or (fmt == "auto" and is_table_name(paths, text)):
        return TableRef(text, "table")
    path = os.path.expanduser(text) if text.startswith("~") else text
    if not paths.exists(path):
        raise DataError(
            f"{key}: {text} does not exist (expected a Delta/Parquet path, aclImdb folder, table name or hf:<dataset>)"
        )
    if split is not None and paths.is_dir(path):
        for candidate in (join(path, f"{split}.parquet"), join(path, split)):
            if paths.exists(candidate):
                return resolve_source(spark, candidate, fmt, None, key)
    if fmt != "auto":
        return TableRef(_location(paths, path), fmt)  # type: ignore[arg-type]
    detected = _detect_single(paths, path)
    if detected is None:
        wanted = f" or a '{split}' split" if split else ""
        raise DataError(f"{key}: {text} holds no Delta table, Parquet files, pos/neg folders{wanted}")
    return TableRef(_location(paths, path), detected)


def has_split(spark: SparkSession, text: str, split: str) -> bool:
    """Whether ``text`` is a folder of splits (or a hub dataset) that holds ``split``."""
    if text.startswith("hf:"):
        return True
    paths = data_paths(spark)
    path = os.path.expanduser(text) if text.startswith("~") else text
    if is_table_name(paths, path):
        return False
    return paths.exists(join(path, f"{split}.parquet")) or paths.is_dir(join(path, split))


def read_spark(spark: SparkSession, source: TableRef) -> DataFrame:
    """Read a Delta/Parquet/table source as a Spark DataFrame."""
    if source.format == "delta":
        return spark.read.format("delta").load(source.location)
    if source.format == "parquet":
        return spark.read.parquet(source.location)
    if source.format == "table":
        if not spark.catalog.tableExists(source.location):
            raise DataError(f"table {source.location} does not exist in the catalog")
        return spark.table(source.location)
    raise ValueError(f"{source.describe()} is not a Spark source")  # callers route the others elsewhere


def read_aclimdb(
    spark: SparkSession, folder: str, text_column: str = "text", label_column: str = "label"
) -> pd.DataFrame:
    """Read the original aclImdb layout: ``<folder>/{neg,pos}/<id>_<rating>.txt`` (neg=0, pos=1), on any
    file system Spark can read."""
    frames = []
    for label, name in ((0, "neg"), (1, "pos")):
        if not data_paths(spark).is_dir(join(folder, name)):
            continue
        files = spark.read.option("wholetext", "true").text(join(folder, name, "*.txt"))
        stem = F.regexp_extract(F.input_file_name(), r"([^/]+)\.txt$", 1)
        frames.append(
            files.select(
                F.concat(F.lit(f"{name}/"), stem).alias("review_id"),
                F.col("value").alias(text_column),
                F.lit(label).alias(label_column),
            ).toPandas()
        )
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if rows.empty:
        raise DataError(f"{folder}: no review files under pos/ or neg/")
    return rows.sort_values("review_id", ignore_index=True)


def read_hf(name: str, split: str | None) -> pd.DataFrame:
    """Load a Hugging Face Hub dataset split (needs hub access)."""
    import datasets

    try:
        return datasets.load_dataset(name, split=split or "train").to_pandas()
    except Exception as exc:  # offline or unknown dataset: say which, keep the cause chained
        raise DataError(f"could not load hf:{name} split {split}: {exc.__class__.__name__}: {exc}") from exc


def require_columns(available: list[str], wanted: list[str], where: str, what: str = "column") -> None:
    """Raise a :class:`DataError` naming the first missing column and listing the available ones."""
    missing = [c for c in wanted if c not in available]
    if missing:
        raise DataError(f"{what} '{missing[0]}' not found in {where} (columns: {', '.join(available)})")


def read_pandas(
    spark: SparkSession, source: TableRef, columns: list[str], where: str | None = None, key: str = "where"
) -> pd.DataFrame:
    """Read ``columns`` of any source into pandas on the driver (training data is driver-sized), keeping the
    rows where the Spark SQL condition ``where`` holds (any column of the source; ``key`` names the
    setting in errors)."""
    if source.format in ("aclimdb", "hf"):
        if source.format == "aclimdb":
            frame = read_aclimdb(spark, source.location, *columns[:2])
        else:
            frame = read_hf(source.location, source.split)
        require_columns(list(frame.columns), columns, source.describe())
        if not where:
            return frame[columns]
        df = spark.createDataFrame(frame)
    else:
        df = read_spark(spark, source)
        require_columns(df.columns, columns, source.describe())
    if where:
        try:
            df = df.where(where)
            _ = df.schema  # analysed now: a bad condition fails here, naming itself
        except (AnalysisException, ParseException) as exc:
            first = str(exc).strip().splitlines()[0][:300]
            raise DataError(f"{key}: condition {where!r} cannot be applied to {source.describe()}: {first}") from None
    return df.select(*columns).toPandas()
