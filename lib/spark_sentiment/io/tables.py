"""Where review tables live and how to read them: :class:`TableRef` is the one type for "a path or a table".

A source string (Delta, Parquet, a catalog table, the aclImdb folder layout, ``hf:<dataset>``) is resolved
without Spark where possible, so a missing path fails before any JVM starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from ..core.errors import DataError
from ..core.names import is_table_identifier

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

    def describe(self) -> str:
        if self.format == "table":
            return f"table {self.location}"
        suffix = f" (split {self.split})" if self.split and self.format == "hf" else ""
        return f"{self.format}:{self.location}{suffix}"


def is_table_name(text: str) -> bool:
    """True for ``name``, ``db.name`` or ``catalog.db.name`` (not a path)."""
    return is_table_identifier(text) and not Path(text).exists()


def _detect_single(path: Path) -> Format | None:
    if path.is_file():
        return "parquet" if path.suffix == ".parquet" else None
    if (path / "_delta_log").is_dir():
        return "delta"
    if (path / "pos").is_dir() and (path / "neg").is_dir():
        return "aclimdb"
    if any(path.glob("*.parquet")):
        return "parquet"
    return None


def resolve_source(text: str, fmt: str = "auto", split: str | None = None, key: str = "data.path") -> TableRef:
    """Resolve one source string; with ``split`` look for that split inside a folder of splits.

    Raises
    ------
    DataError
        The path does not exist, or holds no recognizable table (the message names ``key``).
    """
    if fmt == "hf" or (fmt == "auto" and text.startswith("hf:")):
        return TableRef(text.removeprefix("hf:"), "hf", split)
    if fmt == "table" or (fmt == "auto" and is_table_name(text)):
        return TableRef(text, "table")
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(
            f"{key}: {text} does not exist (expected a Delta/Parquet path, aclImdb folder, table name or hf:<dataset>)"
        )
    if split is not None and path.is_dir():
        for candidate in (path / f"{split}.parquet", path / split):
            if candidate.exists():
                return resolve_source(str(candidate), fmt, None, key)
    if fmt != "auto":
        return TableRef(str(path.resolve()), fmt)  # type: ignore[arg-type]
    detected = _detect_single(path)
    if detected is None:
        wanted = f" or a '{split}' split" if split else ""
        raise DataError(f"{key}: {text} holds no Delta table, Parquet files, pos/neg folders{wanted}")
    return TableRef(str(path.resolve()), detected)


def has_split(text: str, split: str) -> bool:
    """Whether ``text`` is a folder of splits (or a hub dataset) that holds ``split``."""
    if text.startswith("hf:"):
        return True
    path = Path(text).expanduser()
    return path.is_dir() and ((path / f"{split}.parquet").exists() or (path / split).is_dir())


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


def read_aclimdb(folder: str, text_column: str = "text", label_column: str = "label") -> pd.DataFrame:
    """Read the original aclImdb layout: ``<folder>/{neg,pos}/<id>_<rating>.txt`` (neg=0, pos=1)."""
    rows = []
    for label, name in ((0, "neg"), (1, "pos")):
        for file in sorted((Path(folder) / name).glob("*.txt")):
            rows.append((f"{name}/{file.stem}", file.read_text(encoding="utf-8"), label))
    if not rows:
        raise DataError(f"{folder}: no review files under pos/ or neg/")
    return pd.DataFrame(rows, columns=["review_id", text_column, label_column])


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


def read_pandas(spark: SparkSession | None, source: TableRef, columns: list[str]) -> pd.DataFrame:
    """Read ``columns`` of any source into pandas on the driver (training data is driver-sized)."""
    if source.format == "aclimdb":
        frame = read_aclimdb(source.location, *columns[:2])
    elif source.format == "hf":
        frame = read_hf(source.location, source.split)
    else:
        if spark is None:
            raise ValueError("a SparkSession is needed to read " + source.describe())
        df = read_spark(spark, source)
        require_columns(df.columns, columns, source.describe())
        return df.select(*columns).toPandas()
    require_columns(list(frame.columns), columns, source.describe())
    return frame[columns]
