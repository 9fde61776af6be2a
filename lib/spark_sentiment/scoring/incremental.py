"""Which input rows an incremental run must (re)score, and which output rows it must delete.

Two ways to find them, both ending in one MERGE on the key columns:

* **Change Data Feed** (input is Delta with ``delta.enableChangeDataFeed``, and the output remembers the
  input version it processed last): the keys touched by the input commits since then. Their rows are taken
  from the pinned input snapshot (current content, whatever order the changes came in); touched keys that
  are no longer in the snapshot were deleted.
* **Key comparison** (first run with CDF unavailable, Parquet input, expired history, model change): a row
  is new or changed when no output row has its key and the same input values (a fingerprint of the input
  columns) -- and, with ``rescore=on_model_change``, the model version being used now.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..core.names import quote
from ..io.delta import WriteResult, last_tag, read_target, target_exists
from ..io.snapshot import Snapshot
from .run import ScoringRun
from .stats import RunStats

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """The work of one incremental run (DataFrames are lazy except ``deletes``, which is small: keys only)."""

    method: str  # initial | change_data_feed | key_comparison | up_to_date | granularity_change
    upserts: DataFrame | None  # input rows to score and upsert
    deletes: DataFrame | None  # output keys to delete
    previous_version: int | None  # input version the last run processed


def fingerprint(columns: list[str]) -> Column:
    """A hash of the row's values in ``columns`` (to_json handles maps and binaries that ``=`` cannot)."""
    return F.sha2(F.to_json(F.struct(*[F.col(quote(c)) for c in sorted(columns)])), 256)


def _key_comparison(
    snapshot: DataFrame, output: DataFrame, keys: list[str], model: str, rescore: str, deletes: str
) -> tuple[DataFrame, DataFrame | None]:
    shared = [c for c in snapshot.columns if c in output.columns]
    left = snapshot.withColumn("__fp", fingerprint(shared))
    right = output.select(*[F.col(quote(k)) for k in keys], fingerprint(shared).alias("__fp"), F.col("sentiment_model"))
    if rescore == "on_model_change":
        right = right.where(F.col("sentiment_model") == F.lit(model))
    same = [*keys, "__fp"]
    upserts = left.join(right.drop("sentiment_model"), on=same, how="left_anti").drop("__fp")
    gone = None
    if deletes == "delete":
        key_columns = [F.col(quote(k)) for k in keys]
        gone = output.select(*key_columns).join(snapshot.select(*key_columns), keys, "left_anti")
    return upserts, gone


def _changed_keys(table: Snapshot, start: int, keys: list[str]) -> DataFrame | None:
    """Distinct keys touched by input commits ``start..table.version``; None when the feed cannot serve it
    (not enabled at ``start``, or its files were vacuumed)."""
    changes = table.read_changes(start)
    try:
        changes.limit(1).collect()  # the feed's range is checked when it runs, not when it is defined
    except AnalysisException as exc:
        log.warning(
            "change data feed of %s unavailable from version %d (%s); comparing keys instead",
            table.describe(),
            start,
            str(exc).splitlines()[0],
        )
        return None
    return changes.select(*[F.col(quote(k)) for k in keys]).distinct()


def plan_incremental(
    snapshot: Snapshot,
    rows: DataFrame,
    output: DataFrame | None,
    previous: dict[str, Any] | None,
    keys: list[str],
    model: str,
    rescore: str = "on_model_change",
    deletes: str = "delete",
    granularity: str = "review",
) -> Plan:
    """Plan one incremental run.

    Parameters
    ----------
    snapshot, rows
        The input pinned to one version, and its rows at that version.
    output
        The current output table, or None on the first run.
    previous
        The tag of the last incremental commit of this app to the output (``source_version``, ``model``,
        ``granularity``: commits before granularity existed were review).
    """
    previous_version = previous.get("source_version") if previous else None
    if output is None:
        return Plan("initial", rows, None, None)
    if previous is not None and previous.get("granularity", "review") != granularity:
        # every row gets the columns of the new granularity (an unchanged row would keep nulls there)
        _, gone = _key_comparison(rows, output, keys, model, rescore, deletes)
        return Plan("granularity_change", rows, gone, previous_version)
    model_changed = previous is not None and previous.get("model") != model and rescore == "on_model_change"
    if previous_version is not None and snapshot.version is not None and not model_changed:
        if previous_version == snapshot.version:
            return Plan("up_to_date", None, None, previous_version)
        if snapshot.change_data_feed and previous_version < snapshot.version:
            touched = _changed_keys(snapshot, previous_version + 1, keys)
            if touched is not None:
                upserts = rows.join(touched, keys, "left_semi")
                gone = touched.join(rows.select(*[quote(k) for k in keys]), keys, "left_anti")
                return Plan("change_data_feed", upserts, gone if deletes == "delete" else None, previous_version)
    upserts, gone = _key_comparison(rows, output, keys, model, rescore, deletes)
    return Plan("key_comparison", upserts, gone, previous_version)


@dataclass(frozen=True)
class Outcome:
    """One incremental attempt: how the work was found, what was scored and what was written."""

    method: str
    previous_input_version: int | None
    stats: RunStats | None = None
    write: WriteResult | None = None  # None: nothing to write (up to date, or nothing changed)


def txn_version(previous: dict[str, Any] | None) -> int:
    """Delta txnVersion of an incremental commit: above the last one we recorded, and above a wall-clock
    floor so it still increases if the history that recorded it has expired."""
    recorded = (previous or {}).get("txn_version")
    last = int(recorded) if recorded is not None else -1
    return max(last + 1, int(time.time() * 1000))


def run_incremental(run: ScoringRun) -> Outcome:
    """Plan, score and write one incremental run (the caller re-runs it from scratch after a conflict)."""
    spark, cfg, table, target = run.spark, run.cfg, run.table, run.target
    exists = target_exists(spark, target)  # looked up again on every attempt: a racing writer may create it
    previous = last_tag(spark, target, run.app_id, exists=exists)
    output = read_target(spark, target) if exists else None
    keys = cfg.input.key_columns
    plan = plan_incremental(
        table,
        table.read(),
        output,
        previous,
        keys,
        run.model.label,
        cfg.output.rescore,
        cfg.output.deletes,
        run.score.granularity,
    )
    if plan.upserts is None:
        return Outcome(plan.method, plan.previous_version)
    deletes = plan.deletes.localCheckpoint(eager=True) if plan.deletes is not None else None
    to_delete = deletes.count() if deletes is not None else 0
    scored, stats = run.score_rows(plan.upserts, f"scoring {table.describe()} ({plan.method})")
    log.info("%s: %d rows scored, %d keys to delete (%s)", table.describe(), stats.rows, to_delete, plan.method)
    if stats.rows == 0 and to_delete == 0:
        return Outcome(plan.method, plan.previous_version, stats)
    tag = run.tag(txn_version(previous), mode="incremental", source_version=table.version)
    write = run.write(scored, "incremental", tag, deletes if to_delete else None)
    return Outcome(plan.method, plan.previous_version, stats, write)
