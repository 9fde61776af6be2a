"""Write scored rows to Delta: overwrite, append, merge (upsert on keys) or merge with deletes.

Every write is ONE Delta commit. It carries a tag in the commit's ``userMetadata`` (app id, a token unique
to the attempt, the mode, the input version and the model), and, when the caller gives an idempotence
version, Delta's own ``txnAppId``/``txnVersion``: Delta then skips a write whose version the table has
already committed for that app, even when two jobs race. The tag is how a rerun finds what the last run did
(incremental progress) and how a job finds its own commit's metrics in a table others write to.

Delta is reached through SQL only (``DESCRIBE DETAIL``, ``DESCRIBE HISTORY``, ``MERGE INTO``) and DataFrame
writes, never the ``DeltaTable`` Python API: the same statements run on a classic session and over Spark
Connect, where that API needs a Delta Connect plugin on the server.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

from py4j.protocol import Py4JError
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField

from ..core.errors import DataError
from ..core.names import quote
from .features import check_output_features, creation_options, unsupported_features_as_errors
from .fs import data_paths
from .tables import TableRef

log = logging.getLogger(__name__)
T = TypeVar("T")

MARKER = "spark_sentiment"  # key of our tag inside a commit's userMetadata JSON
OP_COLUMN = "__spark_sentiment_op"  # upsert | delete, only inside the MERGE source

# Delta's optimistic-concurrency failures: the commit lost a race and nothing of it was stored.
_CONFLICT_NAMES = (
    "DeltaConcurrentModificationException",
    "ConcurrentWriteException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
)
try:  # importing it also makes pyspark raise Delta's Java conflicts as these Python classes
    from delta import exceptions as delta_exceptions
except ImportError:  # delta-spark 4.0.0's wheel has no delta.exceptions: conflicts are told by their Java class
    delta_exceptions = None
CONFLICTS: tuple[type[Exception], ...] = tuple(
    getattr(delta_exceptions, name) for name in _CONFLICT_NAMES if hasattr(delta_exceptions, name)
)


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is a Delta commit conflict: one of Delta's Python classes, or (where delta-spark has
    none) a Java exception of one of those classes as pyspark raises it."""
    if CONFLICTS and isinstance(exc, CONFLICTS):
        return True
    origin = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    if origin is None:
        return False
    try:
        java_class = str(origin.getClass().getName())
    except Py4JError:  # the gateway is gone: not something a retry would mend
        return False
    return java_class.startswith("io.delta.exceptions.") and java_class.rsplit(".", 1)[-1] in _CONFLICT_NAMES


_TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION = "spark.databricks.delta.write.txnVersion"
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


@dataclass(frozen=True)
class CommitTag:
    """What one write records in its commit.

    Parameters
    ----------
    app_id
        Delta ``txnAppId``: one id per logical writer (by default derived from the input).
    txn_version
        Delta ``txnVersion``; ``None`` writes without Delta's idempotence guard.
    state
        JSON-able facts for the next run (mode, input version, model...).
    """

    app_id: str
    txn_version: int | None = None
    state: dict[str, Any] = field(default_factory=dict)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def user_metadata(self) -> str:
        body = {"app_id": self.app_id, "token": self.token, "txn_version": self.txn_version, **self.state}
        return json.dumps({MARKER: body}, sort_keys=True)


def read_tag(user_metadata: str | None) -> dict[str, Any] | None:
    """Our tag from a commit's ``userMetadata``, or None for commits written by anything else."""
    if not user_metadata:
        return None
    try:
        body = json.loads(user_metadata)
    except ValueError:
        return None
    tag = body.get(MARKER) if isinstance(body, dict) else None
    return tag if isinstance(tag, dict) else None


@contextmanager
def _tagged(spark: SparkSession, tag: CommitTag) -> Iterator[None]:
    """Session confs that Delta reads for the next commit (DataFrame writes and MERGE alike); always unset,
    so no later statement of this session inherits them."""
    confs = {_USER_METADATA: tag.user_metadata()}
    if tag.txn_version is not None:
        confs.update({_TXN_APP_ID: tag.app_id, _TXN_VERSION: str(tag.txn_version)})
    for key, value in confs.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key in confs:
            spark.conf.unset(key)


def describe_detail(spark: SparkSession, target: TableRef) -> Row:
    """``DESCRIBE DETAIL`` of a table or path (format, location, properties, tableFeatures, ...)."""
    return spark.sql(f"DESCRIBE DETAIL {target.sql_name()}").first()


def read_target(spark: SparkSession, target: TableRef) -> DataFrame:
    """The target's current rows."""
    return spark.read.table(target.table) if target.table else spark.read.format("delta").load(str(target.path))


def missing_columns(spark: SparkSession, target: TableRef, fields: list[StructField]) -> list[StructField]:
    """Those of ``fields`` the existing ``target`` lacks (by name, as Delta matches them: case-insensitively).

    Raises
    ------
    DataError
        The target has one of them with another type.
    """
    existing = {f.name.lower(): f for f in read_target(spark, target).schema.fields}
    missing = []
    for wanted in fields:
        found = existing.get(wanted.name.lower())
        if found is None:
            missing.append(wanted)
        elif found.dataType.simpleString() != wanted.dataType.simpleString():
            raise DataError(
                f"output {target.describe()} has column '{found.name}' of type {found.dataType.simpleString()}, "
                f"scoring writes {wanted.dataType.simpleString()}; write to a new output or drop the column"
            )
    return missing


def add_columns(spark: SparkSession, target: TableRef, fields: list[StructField]) -> None:
    """``ALTER TABLE ... ADD COLUMNS``: nullable columns appended to the target's schema (a metadata-only
    commit; existing rows read null there)."""
    columns = ", ".join(f"{quote(f.name)} {f.dataType.simpleString()}" for f in fields)
    spark.sql(f"ALTER TABLE {target.sql_name()} ADD COLUMNS ({columns})")


def history(spark: SparkSession, target: TableRef, limit: int | None = None) -> DataFrame:
    """``DESCRIBE HISTORY``: one row per commit, newest first (version, userMetadata, operationMetrics, ...)."""
    return spark.sql(f"DESCRIBE HISTORY {target.sql_name()}" + (f" LIMIT {int(limit)}" if limit else ""))


def existing_detail(spark: SparkSession, target: TableRef) -> Row | None:
    """``DESCRIBE DETAIL`` of the output when it exists as a Delta table; None when nothing is there.

    Raises
    ------
    DataError
        Something that is not a Delta table is there.
    """
    if nothing_at(spark, target):
        return None
    if target.table:
        detail = describe_detail(spark, target)
        if str(detail["format"]).lower() != "delta":
            raise DataError(f"output table {target.table} exists but is not a Delta table")
        return detail
    try:
        return describe_detail(spark, target)
    except AnalysisException:  # DELTA_MISSING_DELTA_TABLE: an empty folder, or something that is not Delta
        pass
    paths = data_paths(spark)  # the path's own file system: local, s3a://, abfss://, dbfs:/ ...
    location = str(target.path)
    if not paths.exists(location) or (paths.is_dir(location) and not paths.children(location)):
        return None
    raise DataError(f"output path {target.path} exists but is not a Delta table")


def nothing_at(spark: SparkSession, target: TableRef) -> bool:
    """Whether nothing is at ``target`` yet: a catalog lookup or one file-system call, so that a first write
    asks no query that fails (a failed ``DESCRIBE`` costs a JVM exception and its conversion)."""
    if target.table:
        return not spark.catalog.tableExists(target.table)
    return not data_paths(spark).exists(str(target.path))


def target_exists(spark: SparkSession, target: TableRef) -> bool:
    """Whether the output already exists as a Delta table (a non-Delta one is an error)."""
    return existing_detail(spark, target) is not None


def check_output(spark: SparkSession, target: TableRef, columns: list[str], mode: str) -> bool:
    """Before scoring: the output is absent or a Delta table that can take rows with ``columns`` in
    ``mode`` (see :mod:`.features`). Returns whether it exists (one ``DESCRIBE DETAIL`` answers both).

    Raises
    ------
    DataError
        A non-Delta output, or a table feature, property or column name the write could not honour.
    """
    with unsupported_features_as_errors(f"output {target.describe()}"):
        detail = existing_detail(spark, target)
    if detail is None:
        return False
    features = list(detail["tableFeatures"] or [])
    check_output_features(spark, target, dict(detail["properties"] or {}), features, columns, mode)
    return True


def table_version(spark: SparkSession, target: TableRef) -> int | None:
    """The target's current Delta version; None when it does not exist yet (see :func:`nothing_at`), else
    from one ``DESCRIBE HISTORY`` (the existence check, which refuses a non-Delta target, only when that
    fails)."""
    if nothing_at(spark, target):
        return None
    try:
        return int(history(spark, target, 1).select("version").first()["version"])
    except AnalysisException:
        if target_exists(spark, target):  # raises DataError for something that is not a Delta table
            raise
        return None


HISTORY_PAGE = 20  # commits read first when looking for our newest commits (see _tagged_commits)


def _tagged_commits(spark: SparkSession, target: TableRef, after: int | None = None) -> Iterator[tuple[int, dict, Any]]:
    """``(version, tag, operationMetrics)`` of our commits, newest first (optionally only after a version).

    Read lazily: the newest ``HISTORY_PAGE`` commits first (``DESCRIBE HISTORY ... LIMIT``), the older ones
    only if the caller reads past them. A scheduled job finds its last commit, or the one it just made, among
    the newest few; ``DESCRIBE HISTORY`` without a limit reads every retained commit file of the table (30
    days of them by default: one file per run of an hourly job, each a request on an object store).
    """
    columns = ("version", "userMetadata", "operationMetrics")
    rows = history(spark, target, HISTORY_PAGE).select(*columns).collect()
    older = len(rows) == HISTORY_PAGE
    while rows:
        rows.sort(key=lambda row: int(row["version"]), reverse=True)
        for row in rows:
            version = int(row["version"])
            if after is not None and version <= after:
                return
            tag = read_tag(row["userMetadata"])
            if tag is not None:
                yield version, tag, row["operationMetrics"]
        if not older:
            return
        oldest, older = int(rows[-1]["version"]), False
        rows = history(spark, target).where(F.col("version") < oldest).select(*columns).collect()


def last_tag(spark: SparkSession, target: TableRef, app_id: str, exists: bool | None = None) -> dict[str, Any] | None:
    """The tag of the newest commit ``app_id`` made to ``target`` (plus its ``version``), or None.

    Read from the Delta history, so it reaches back as far as the log is retained
    (``delta.logRetentionDuration``, 30 days by default); callers must work without it. ``exists``: whether
    the caller has just seen the target exist (None: look here).
    """
    if exists is None:
        exists = target_exists(spark, target)
    if not exists:
        return None
    for version, tag, _ in _tagged_commits(spark, target):
        if tag.get("app_id") == app_id:
            return {**tag, "version": version}
    return None


def write_table(df: DataFrame, target: TableRef, mode: str, create: bool = False) -> None:
    """Plain Delta write (``overwrite``/``append``) to a path or a catalog table; ``create``: the write
    creates the table, with the properties its columns need (column mapping for names Parquet cannot hold)."""
    writer = df.write.format("delta").mode(mode).options(**(creation_options(df.columns) if create else {}))
    if target.table:
        writer.saveAsTable(target.table)
    else:
        writer.save(str(target.path))


def _merge(target: TableRef, df: DataFrame, key_columns: list[str], deletes: DataFrame | None) -> None:
    """One ``MERGE INTO``: upsert ``df`` on the keys and (optionally) delete the keys in ``deletes``."""
    spark = df.sparkSession
    source = df.withColumn(OP_COLUMN, F.lit("upsert"))
    if deletes is not None:
        gone = deletes.select(*[F.col(quote(k)) for k in key_columns]).withColumn(OP_COLUMN, F.lit("delete"))
        source = source.unionByName(gone, allowMissingColumns=True)
    view = f"spark_sentiment_merge_{uuid.uuid4().hex}"
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in key_columns)  # null keys are refused up front
    columns = [quote(c) for c in df.columns]
    op = f"s.{quote(OP_COLUMN)}"
    statement = (
        f"MERGE INTO {target.sql_name()} AS t USING {view} AS s ON {on} "
        f"WHEN MATCHED AND {op} = 'delete' THEN DELETE "
        f"WHEN MATCHED AND {op} = 'upsert' THEN UPDATE SET {', '.join(f't.{c} = s.{c}' for c in columns)} "
        f"WHEN NOT MATCHED AND {op} = 'upsert' THEN INSERT ({', '.join(columns)}) "
        f"VALUES ({', '.join(f's.{c}' for c in columns)})"
    )
    source.createOrReplaceTempView(view)
    try:
        spark.sql(statement)
    finally:
        spark.catalog.dropTempView(view)


@dataclass(frozen=True)
class WriteResult:
    """What one tagged write did: the table version after it, whether our commit is in it (False: Delta
    skipped it, the txnVersion was already committed) and Delta's operation metrics of that commit."""

    version: int | None
    committed: bool
    metrics: dict[str, int] = field(default_factory=dict)

    @property
    def rows_inserted(self) -> int:
        return self.metrics.get("numTargetRowsInserted", self.metrics.get("numOutputRows", 0))

    @property
    def rows_updated(self) -> int:
        return self.metrics.get("numTargetRowsUpdated", 0)

    @property
    def rows_deleted(self) -> int:
        return self.metrics.get("numTargetRowsDeleted", 0)


def write_scored(
    df: DataFrame,
    target: TableRef,
    mode: str,
    key_columns: list[str],
    tag: CommitTag,
    deletes: DataFrame | None = None,
) -> WriteResult:
    """Write ``df`` to ``target`` in one tagged commit.

    ``merge`` and ``incremental`` upsert on ``key_columns`` (a matched row is replaced, a new one inserted)
    and delete the keys in ``deletes``, so rerunning the same input never duplicates a row. A missing target
    is created by the first write in every mode. ``committed`` is False when Delta skipped the write
    because ``tag.txn_version`` was already committed for ``tag.app_id``.
    """
    spark = df.sparkSession
    before = table_version(spark, target)
    with _tagged(spark, tag):
        if before is None or mode in ("overwrite", "append"):
            write_table(df, target, mode if before is not None else "overwrite", create=before is None)
        else:
            _merge(target, df, key_columns, deletes)
    for version, found, metrics in _tagged_commits(spark, target, after=before):
        if found.get("token") == tag.token:
            numbers = {k: int(v) for k, v in (metrics or {}).items() if str(v).isdigit()}
            return WriteResult(version, True, numbers)
    return WriteResult(table_version(spark, target), False)


def retry_on_conflict(what: str, attempt: Callable[[], T], retries: int) -> tuple[T, int]:
    """Run ``attempt``; after a Delta commit conflict (nothing was committed) run it again, at most
    ``retries`` more times with jittered backoff. Returns the result and the number of attempts.

    Raises
    ------
    DataError
        Every attempt lost a conflict (the message names ``what`` and the last conflict).
    """
    number = 1
    while True:
        try:
            return attempt(), number
        except Exception as exc:  # noqa: BLE001 - only conflicts are retried; everything else is raised as it is
            if not is_conflict(exc):
                raise
            first = str(exc).splitlines()[0]
            if number > retries:
                raise DataError(
                    f"{what}: gave up after {number} attempts, each lost a Delta conflict: {first}"
                ) from None
            log.warning("%s: Delta commit conflict (attempt %d of %d), retrying: %s", what, number, retries + 1, first)
            time.sleep(min(0.5 * 2 ** (number - 1), 8.0) + random.uniform(0, 0.5))
            number += 1
