"""Write scored rows to Delta: overwrite, append, merge (upsert on keys) or merge with deletes.

Every write is ONE Delta commit. It carries a tag in the commit's ``userMetadata`` (app id, a token unique
to the attempt, the mode, the input version and the model), and, when the caller gives an idempotence
version, Delta's own ``txnAppId``/``txnVersion``: Delta then skips a write whose version the table has
already committed for that app, even when two jobs race. The tag is how a rerun finds what the last run did
(incremental progress) and how a job finds its own commit's metrics in a table others write to.
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

from delta import exceptions as delta_exceptions
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..core.errors import DataError
from ..core.names import quote
from .features import check_output_features, creation_options, unsupported_features_as_errors
from .fs import HadoopPaths
from .tables import TableRef

log = logging.getLogger(__name__)
T = TypeVar("T")

MARKER = "spark_sentiment"  # key of our tag inside a commit's userMetadata JSON
OP_COLUMN = "__spark_sentiment_op"  # upsert | delete, only inside the MERGE source

# Delta's optimistic-concurrency failures: the commit lost a race and nothing of it was stored.
CONFLICTS: tuple[type[Exception], ...] = (
    delta_exceptions.DeltaConcurrentModificationException,
    delta_exceptions.ConcurrentWriteException,
    delta_exceptions.MetadataChangedException,
    delta_exceptions.ProtocolChangedException,
    delta_exceptions.ConcurrentAppendException,
    delta_exceptions.ConcurrentDeleteReadException,
    delta_exceptions.ConcurrentDeleteDeleteException,
    delta_exceptions.ConcurrentTransactionException,
)

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


def target_exists(spark: SparkSession, target: TableRef) -> bool:
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
    paths = HadoopPaths(spark)  # the path's own file system: local, s3a://, abfss://, dbfs:/ ...
    if not paths.exists(location) or (paths.is_dir(location) and not paths.children(location)):
        return False
    raise DataError(f"output path {target.path} exists but is not a Delta table")


def check_output(spark: SparkSession, target: TableRef, columns: list[str], mode: str) -> None:
    """Before scoring: the output is absent or a Delta table that can take rows with ``columns`` in
    ``mode`` (see :mod:`.features`).

    Raises
    ------
    DataError
        A non-Delta output, or a table feature, property or column name the write could not honour.
    """
    with unsupported_features_as_errors(f"output {target.describe()}"):
        if not target_exists(spark, target):
            return
        detail = delta_table(spark, target).detail().select("properties", "tableFeatures").first()
    features = list(detail["tableFeatures"] or [])
    check_output_features(spark, target, dict(detail["properties"] or {}), features, columns, mode)


def delta_table(spark: SparkSession, target: TableRef) -> DeltaTable:
    return DeltaTable.forName(spark, target.table) if target.table else DeltaTable.forPath(spark, str(target.path))


def table_version(spark: SparkSession, target: TableRef) -> int | None:
    """The target's current Delta version; None when it does not exist yet."""
    if not target_exists(spark, target):
        return None
    return int(delta_table(spark, target).history(1).select("version").first()["version"])


def _tagged_commits(spark: SparkSession, target: TableRef, after: int | None = None) -> list[tuple[int, dict, Any]]:
    """``(version, tag, operationMetrics)`` of our commits, newest first (optionally only after a version)."""
    history = delta_table(spark, target).history().where(F.col("userMetadata").isNotNull())
    if after is not None:
        history = history.where(F.col("version") > after)
    rows = history.select("version", "userMetadata", "operationMetrics").orderBy(F.col("version").desc()).collect()
    found = []
    for row in rows:
        tag = read_tag(row["userMetadata"])
        if tag is not None:
            found.append((int(row["version"]), tag, row["operationMetrics"]))
    return found


def last_tag(spark: SparkSession, target: TableRef, app_id: str) -> dict[str, Any] | None:
    """The tag of the newest commit ``app_id`` made to ``target`` (plus its ``version``), or None.

    Read from the Delta history, so it reaches back as far as the log is retained
    (``delta.logRetentionDuration``, 30 days by default); callers must work without it.
    """
    if not target_exists(spark, target):
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


def _merge(target_table: DeltaTable, df: DataFrame, key_columns: list[str], deletes: DataFrame | None) -> None:
    """One MERGE: upsert ``df`` on the keys and (optionally) delete the keys in ``deletes``."""
    condition = None
    for key in key_columns:
        clause = F.col(f"t.{quote(key)}") == F.col(f"s.{quote(key)}")  # null keys are refused up front
        condition = clause if condition is None else condition & clause
    columns = {quote(c): F.col(f"s.{quote(c)}") for c in df.columns}
    source = df.withColumn(OP_COLUMN, F.lit("upsert"))
    if deletes is not None:
        gone = deletes.select(*[F.col(quote(k)) for k in key_columns]).withColumn(OP_COLUMN, F.lit("delete"))
        source = source.unionByName(gone, allowMissingColumns=True)
    is_upsert = F.col(f"s.{OP_COLUMN}") == "upsert"
    (
        target_table.alias("t")
        .merge(source.alias("s"), condition)
        .whenMatchedDelete(condition=~is_upsert)
        .whenMatchedUpdate(condition=is_upsert, set=columns)
        .whenNotMatchedInsert(condition=is_upsert, values=columns)
        .execute()
    )


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
            _merge(delta_table(spark, target), df, key_columns, deletes)
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
        except CONFLICTS as exc:
            first = str(exc).splitlines()[0]
            if number > retries:
                raise DataError(
                    f"{what}: gave up after {number} attempts, each lost a Delta conflict: {first}"
                ) from None
            log.warning("%s: Delta commit conflict (attempt %d of %d), retrying: %s", what, number, retries + 1, first)
            time.sleep(min(0.5 * 2 ** (number - 1), 8.0) + random.uniform(0, 0.5))
            number += 1
