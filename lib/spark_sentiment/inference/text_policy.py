"""What counts as scorable text, and the up-front checks on text columns (both engines share these)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ..core.errors import DataError

if TYPE_CHECKING:  # pyspark is imported lazily: the predictor (and a GPU box without Spark) uses this module
    from pyspark.sql import Column, DataFrame


def check_text_columns(df: DataFrame, columns: list[str], where: str) -> None:
    """Fail before any work when a text column is missing or is not a string column.

    Raises
    ------
    DataError
        Names the column, its type or the available columns.
    """
    from pyspark.sql.types import StringType

    fields = {f.name: f for f in df.schema.fields}
    for name in columns:
        if name not in fields:
            raise DataError(f"text column '{name}' not found in {where} (columns: {', '.join(df.columns)})")
        if not isinstance(fields[name].dataType, StringType):
            raise DataError(
                f"text column '{name}' in {where} is {fields[name].dataType.simpleString()}, expected string"
            )


def scorable(column: Column) -> Column:
    """True where the text gets a label: not null and not empty/whitespace-only (Unicode whitespace).

    This decides the output for both engines; the UDFs also skip such rows to save work.
    """
    return column.isNotNull() & ~column.rlike(r"(?U)^\s*$")  # Java regex, Unicode whitespace


def scorable_mask(texts: pd.Series) -> pd.Series:
    """The pandas twin of :func:`scorable`, used inside the UDFs."""
    return texts.notna() & ~texts.astype("string").str.fullmatch(r"\s*").fillna(True).astype(bool)
