"""Delta table features: what an output table needs for its columns, and what a job cannot honour.

Lakehouse tables (Databricks, Fabric) often carry column mapping (names with spaces or punctuation), deletion
vectors, Change Data Feed, liquid clustering and generated or identity columns. Reading them needs nothing
from us; writing needs two things, both decided on the driver before any row is scored:

* a new output whose column names Parquet cannot store (``' ,;{}()\\n\\t='``) is created with column mapping
  (``delta.columnMapping.mode = name``), which is what Delta requires for such names;
* an existing output the job could not write to fails up front with one line: a table feature this Delta
  Lake cannot write (a table upgraded by a newer runtime), ``delta.appendOnly`` with a mode that updates or
  replaces rows, or such column names in a table without column mapping.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from py4j.protocol import Py4JError, Py4JJavaError
from pyspark.sql import SparkSession

from ..core.errors import DataError
from .tables import TableRef

log = logging.getLogger(__name__)
INVALID_NAME_CHARACTERS = " ,;{}()\n\t="  # what Parquet column names cannot hold without column mapping
COLUMN_MAPPING = "delta.columnMapping.mode"
APPEND_ONLY = "delta.appendOnly"


def unstorable_names(columns: list[str]) -> list[str]:
    """The column names that need column mapping to be stored in Delta."""
    return [c for c in columns if any(ch in c for ch in INVALID_NAME_CHARACTERS)]


def creation_options(columns: list[str]) -> dict[str, str]:
    """Table properties a new output table with ``columns`` needs (DataFrameWriter options on its first write)."""
    return {COLUMN_MAPPING: "name"} if unstorable_names(columns) else {}


def writable_features(spark: SparkSession) -> set[str] | None:
    """Lower-case names of the table features this session's Delta Lake can write; None when the session
    cannot say (no JVM gateway, e.g. Spark Connect): Delta's own check at commit time still applies."""
    try:
        jvm = spark.sparkContext._jvm
        features = jvm.org.apache.spark.sql.delta.TableFeature.allSupportedFeaturesMap().keySet()
        return {name.lower() for name in str(features.mkString("\n")).split("\n") if name}  # one gateway call
    except (NotImplementedError, TypeError, AttributeError, Py4JError) as exc:
        # No gateway (Spark Connect), or a Delta Lake without this method (Delta 3.x, Spark 3.5: py4j's
        # "does not exist in the JVM"): Delta still checks at commit time.
        log.info("cannot list the table features this Delta Lake writes (%s); Delta checks them at commit", exc)
        return None


def check_output_features(
    spark: SparkSession,
    target: TableRef,
    properties: dict[str, str],
    features: list[str],
    columns: list[str],
    mode: str,
) -> None:
    """Fail before scoring when the existing output ``target`` (its Delta ``properties`` and
    ``tableFeatures``) cannot take rows with ``columns`` in ``mode``.

    Raises
    ------
    DataError
        Names the table and the feature, property or column in the way.
    """
    where = f"output {target.describe()}"
    supported = writable_features(spark)
    missing = sorted(f for f in features if supported is not None and f.lower() not in supported)
    if missing:
        raise DataError(
            f"{where} requires Delta table feature(s) {', '.join(missing)} that this Delta Lake cannot write; "
            "run on a runtime whose Delta Lake supports them, or write to another table"
        )
    if str(properties.get(APPEND_ONLY, "false")).lower() == "true" and mode != "append":
        raise DataError(
            f"{where} is append-only ({APPEND_ONLY}=true) but output.mode={mode} updates or replaces rows; "
            "use output.mode=append or another table"
        )
    unstorable = unstorable_names(columns)
    if unstorable and str(properties.get(COLUMN_MAPPING, "none")).lower() == "none":
        raise DataError(
            f"{where} has no column mapping but column '{unstorable[0]}' has a character Delta cannot store "
            f"without it (one of {INVALID_NAME_CHARACTERS!r}); enable it with ALTER TABLE ... SET TBLPROPERTIES "
            f"('{COLUMN_MAPPING}' = 'name') or write to a new table"
        )


@contextmanager
def unsupported_features_as_errors(where: str) -> Iterator[None]:
    """Turn Delta's 'table requires features this Delta Lake does not support' into one ``DataError`` line
    naming ``where`` (the raw error is a multi-line Java exception)."""
    try:
        yield
    except Py4JJavaError as exc:
        java = exc.java_exception
        if "DeltaUnsupportedTableFeatureException" not in java.getClass().getName():
            raise
        message = str(java.getMessage()).splitlines()[0]
        raise DataError(f"{where}: {message}") from None
