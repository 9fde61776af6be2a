"""Streaming scoring (``output.mode: stream``): Structured Streaming from a Delta input with a checkpoint.

The way Databricks and Fabric users score "what is new since last time": ``spark.readStream`` over the
Delta input (optionally its change data feed), ``foreachBatch`` with a checkpoint on any Hadoop path,
``trigger(availableNow=True)`` from a scheduler or a processing-time trigger for a continuous job. Each
micro-batch is scored by the same engines and text policy as the batch modes (the model resolved once,
when the query starts) and written in **one Delta commit**, appended or MERGEd on the key columns (change
feed deletes applied), tagged with ``txnAppId`` = the stream's app id and ``txnVersion`` = the micro-batch
id. A micro-batch that a killed run had committed but not checkpointed is replayed on restart; Delta (and
the check before scoring) skips it, so every input row is written exactly once.

Before anything runs or is written: the input must be Delta (with the change feed enabled when asked
for), have the key and text columns; the checkpoint's parent folder must exist and a checkpoint that is
there must be this job's for the same input table, output and write (a marker file beside Spark's own
files records them).
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from ..core.errors import ConfigError, DataError
from ..core.names import quote
from ..io.delta import retry_on_conflict
from ..io.fs import data_paths, join
from ..io.snapshot import Snapshot, check_keys
from ..io.tables import TableRef
from .config import ScoreJobConfig
from .rows import precision_of
from .run import ScoringRun

log = logging.getLogger(__name__)

MARKER_FILE = "spark_sentiment_stream.json"  # beside Spark's offsets/ and commits/ in the checkpoint
CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


@dataclass
class BatchRecord:
    """What one micro-batch did (the summary's ``stream.batches`` and the runs table)."""

    batch_id: int
    status: str  # committed | skipped (already committed: a replay after a restart) | empty
    rows: int = 0
    deleted_keys: int = 0
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    input_versions: list[int] | None = None  # [first, last] input version the batch covered, where known
    output_version: int | None = None
    seconds: float = 0.0


@dataclass
class StreamOutcome:
    batches: list[BatchRecord]
    query_id: str | None
    seconds: float  # from the query's start to its end
    precision: tuple[dict, ...] = ()  # the precision each kind of worker chose, over all micro-batches

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)

    def label_counts(self) -> dict[str, dict[str, int]]:
        total: dict[str, Counter[str]] = {}
        for batch in self.batches:
            for column, counts in batch.label_counts.items():
                total.setdefault(column, Counter()).update(counts)
        return {column: dict(counts) for column, counts in total.items()}

    def as_dict(self, cfg: ScoreJobConfig) -> dict[str, Any]:
        versions = [v for b in self.batches if b.input_versions for v in b.input_versions]
        return {
            "checkpoint": cfg.stream.checkpoint,
            "trigger": cfg.stream.trigger,
            "write": cfg.stream.write,
            "change_data_feed": cfg.stream.change_data_feed,
            "query_id": self.query_id,
            "batches_committed": sum(b.status == "committed" for b in self.batches),
            "batches_skipped": sum(b.status == "skipped" for b in self.batches),
            "input_versions": [min(versions), max(versions)] if versions else None,
            "rows_per_second": round(self.rows / self.seconds, 2) if self.rows and self.seconds > 0 else None,
            "batches": [asdict(b) for b in self.batches],
        }


def stream_marker(cfg: ScoreJobConfig, table: Snapshot, target: TableRef) -> dict[str, Any]:
    """What a checkpoint is for: a restart with any of it changed would read offsets of another query."""
    return {
        "input_table_id": table.table_id,
        "input": table.describe(),
        "output": target.describe(),
        "write": cfg.stream.write,
        "change_data_feed": cfg.stream.change_data_feed,
        "key_columns": list(cfg.input.key_columns),
    }


def check_stream(spark: SparkSession, cfg: ScoreJobConfig, table: Snapshot, target: TableRef) -> bool:
    """Everything a streaming run could fail on later, checked before it starts; returns whether the
    checkpoint is new (its marker still to be written).

    Raises
    ------
    ConfigError
        A Spark Connect session (``foreachBatch`` runs the job's code on the driver), a missing checkpoint
        parent, or a checkpoint made for another input table, output or write.
    DataError
        An input that is not Delta, or a change feed that is not enabled. (Its text and key columns are
        the caller's checks, made for every mode.)
    """
    if getattr(spark, "_jsparkSession", None) is None:
        raise ConfigError(
            "output.mode stream needs a classic Spark session (foreachBatch runs the scoring on the driver); "
            "over Spark Connect use output.mode incremental"
        )
    where = table.describe()
    if table.version is None:
        raise DataError(f"output.mode stream: input {where} is not a Delta table (streams read Delta tables)")
    if cfg.stream.change_data_feed and not table.change_data_feed:
        raise DataError(
            f"stream.change_data_feed: input {where} does not have the change data feed enabled (set the table "
            "property delta.enableChangeDataFeed = true, or stream.change_data_feed=false for an append-only input)"
        )
    checkpoint = str(cfg.stream.checkpoint)
    paths = data_paths(spark)
    parent = posixpath.dirname(checkpoint.rstrip("/"))
    if parent and not parent.endswith(":") and not paths.is_dir(parent):
        raise ConfigError(f"stream.checkpoint {checkpoint}: its parent folder {parent} does not exist")
    marker_path = join(checkpoint, MARKER_FILE)
    if not paths.exists(checkpoint) or not paths.children(checkpoint):
        return True
    if not paths.is_file(marker_path):
        raise ConfigError(
            f"stream.checkpoint {checkpoint} holds a checkpoint this job did not write (no {MARKER_FILE}); "
            "give a new checkpoint folder"
        )
    found = json.loads(paths.read_text(marker_path))
    wanted = stream_marker(cfg, table, target)
    changed = [key for key in wanted if found.get(key) != wanted[key]]
    if changed:
        details = "; ".join(f"{key}: {found.get(key)!r} there, {wanted[key]!r} now" for key in changed)
        raise ConfigError(
            f"stream.checkpoint {checkpoint} belongs to another query ({details}); give each input, output and "
            "write a checkpoint of its own"
        )
    return False


def split_changes(batch: DataFrame, keys: list[str]) -> tuple[DataFrame, DataFrame]:
    """A change-feed micro-batch as (rows to upsert, keys to delete): each key's last change wins."""
    # Within one input version a key can be deleted and inserted again (an overwrite): the insert wins.
    change_order = F.when(F.col("_change_type") == "delete", 0).otherwise(1)
    latest = Window.partitionBy(*[F.col(quote(k)) for k in keys]).orderBy(
        F.col("_commit_version").desc(), change_order.desc()
    )
    last = (
        batch.where(F.col("_change_type") != "update_preimage")
        .withColumn("__rank", F.row_number().over(latest))
        .where(F.col("__rank") == 1)
    )
    upserts = last.where(F.col("_change_type") != "delete").drop("__rank", *CDF_COLUMNS)
    deletes = last.where(F.col("_change_type") == "delete").select(*[F.col(quote(k)) for k in keys])
    return upserts, deletes


def _offset(value: Any) -> dict | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) and "reservoirVersion" in value else None


def _offset_versions(progress: dict[str, Any]) -> list[int] | None:
    """``[first, last]`` input version a micro-batch read, from its progress event's Delta offsets: an end
    offset at index -1 points before the first file of its version (that version is not read yet); a
    batch without a start offset read the table's snapshot, one version."""
    for source in progress.get("sources") or []:
        end = _offset(source.get("endOffset"))
        if end is None:
            continue
        last = int(end["reservoirVersion"]) - (1 if int(end.get("index", -1)) == -1 else 0)
        start = _offset(source.get("startOffset"))
        first = int(start["reservoirVersion"]) if start is not None else last
        return [min(first, last), last]
    return None


def run_stream(run: ScoringRun) -> StreamOutcome:
    """Start the query, wait for it (available_now: until the input is caught up; processing_time: until
    ``stream.run_seconds`` or the job is stopped) and return what each micro-batch did."""
    spark, cfg, table, target = run.spark, run.cfg, run.table, run.target
    new_checkpoint = check_stream(spark, cfg, table, target)
    checkpoint = str(cfg.stream.checkpoint)
    if new_checkpoint:
        data_paths(spark).write_text(join(checkpoint, MARKER_FILE), json.dumps(stream_marker(cfg, table, target)))
    records: list[BatchRecord] = []
    failures: list[BaseException] = []

    def process(batch: DataFrame, batch_id: int) -> None:
        try:
            records.append(score_micro_batch(run, batch, batch_id))
        except BaseException as exc:  # kept to re-raise as it was; Spark wraps it in a StreamingQueryException
            failures.append(exc)
            raise

    reader = spark.readStream.format("delta")
    if cfg.stream.change_data_feed:
        reader = reader.option("readChangeFeed", "true")
    if cfg.stream.starting_version is not None:
        reader = reader.option("startingVersion", cfg.stream.starting_version)
    if cfg.stream.max_files_per_trigger is not None:
        reader = reader.option("maxFilesPerTrigger", cfg.stream.max_files_per_trigger)
    location = table.source.location
    source = reader.table(location) if table.source.format == "table" else reader.load(location)
    writer = source.writeStream.foreachBatch(process).option("checkpointLocation", checkpoint)
    if cfg.stream.trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=cfg.stream.interval)
    started = time.monotonic()
    query = writer.queryName(f"spark-sentiment {run.app_id}"[:200]).start()
    try:
        _await(query, cfg, started, records)
    except Exception as exc:
        if failures:  # the job's own error (ConfigError, DataError, ...), not Spark's wrapper of it
            raise failures[0] from None
        raise DataError(f"stream from {table.describe()} failed: {str(exc).splitlines()[0]}") from exc
    finally:
        if query.isActive:
            query.stop()
    by_batch = {int(p["batchId"]): p for p in map(_as_dict, query.recentProgress)}
    for record in records:
        if record.input_versions is None and record.batch_id in by_batch:
            record.input_versions = _offset_versions(by_batch[record.batch_id])
    return StreamOutcome(records, str(query.id), time.monotonic() - started, precision_of(run.score))


def score_micro_batch(run: ScoringRun, batch: DataFrame, batch_id: int) -> BatchRecord:
    """Score one micro-batch and write it in one commit tagged with its id; skipped when a killed run had
    committed it already (replayed after a restart)."""
    started = time.perf_counter()
    cfg, target, keys = run.cfg, run.target, list(run.cfg.input.key_columns)
    previous = run.already_committed(batch_id)
    if previous is not None:
        log.info(
            "micro-batch %d already committed to %s (version %s); skipped",
            batch_id,
            target.describe(),
            previous["version"],
        )
        return BatchRecord(batch_id, "skipped", output_version=previous.get("version"))
    versions = None
    if cfg.stream.change_data_feed:
        span = batch.agg(F.min("_commit_version").alias("lo"), F.max("_commit_version").alias("hi")).first()
        versions = [int(span["lo"]), int(span["hi"])] if span["lo"] is not None else None
        upserts, deletes = split_changes(batch, keys)
        deletes = deletes.localCheckpoint(eager=True)  # keys only: read once, however MERGE plans
    else:
        upserts, deletes = batch, None
        if cfg.stream.write == "merge":  # MERGE upserts each key once: a repeated key is refused by name
            check_keys(upserts, keys, f"micro-batch {batch_id} of {run.table.describe()}")
    scored, stats = run.score_rows(upserts, f"stream micro-batch {batch_id} of {run.table.describe()}")
    deleted = deletes.count() if deletes is not None else 0
    if stats.rows == 0 and deleted == 0:
        seconds = round(time.perf_counter() - started, 2)
        return BatchRecord(batch_id, "empty", input_versions=versions, seconds=seconds)
    tag = run.tag(batch_id, mode="stream", write=cfg.stream.write, input_versions=versions)
    write_mode = "merge" if cfg.stream.write == "merge" else "append"
    attempt = lambda: run.write(scored, write_mode, tag, deletes)  # noqa: E731
    write, _ = retry_on_conflict(f"writing {target.describe()}", attempt, cfg.output.max_retries)
    counts = {c: dict(s.label_counts) for c, s in stats.columns.items()}
    log.info(
        "micro-batch %d: %d rows scored, %d keys deleted, %s version %s",
        batch_id,
        stats.rows,
        deleted,
        target.describe(),
        write.version,
    )
    return BatchRecord(
        batch_id,
        "committed" if write.committed else "skipped",
        rows=stats.rows,
        deleted_keys=deleted,
        label_counts=counts,
        input_versions=versions,
        output_version=write.version,
        seconds=round(time.perf_counter() - started, 2),
    )


def _as_dict(progress: Any) -> dict[str, Any]:
    """A progress event as a dict (PySpark < 4 gives dicts, 4 gives StreamingQueryProgress objects)."""
    if isinstance(progress, dict):
        return progress
    return json.loads(progress.json)


def _await(query, cfg: ScoreJobConfig, started: float, records: list[BatchRecord]) -> None:
    """Wait for the query, logging its own progress events (micro-batch, input rows, rates) as they come."""
    interval = cfg.progress_seconds or 30.0
    seen: set[int] = set()
    deadline = started + cfg.stream.run_seconds if cfg.stream.run_seconds else None

    def report() -> None:
        for event in map(_as_dict, query.recentProgress):
            batch = int(event.get("batchId", -1))
            if batch in seen or not event.get("numInputRows"):
                continue
            seen.add(batch)
            rows = sum(r.rows for r in records)
            log.info(
                "stream %s: micro-batch %d read %d input rows (%.1f rows/s processed); %d rows scored in %d "
                "micro-batches, %.0f s elapsed",
                query.name,
                batch,
                event["numInputRows"],
                float(event.get("processedRowsPerSecond") or 0.0),
                rows,
                len(records),
                time.monotonic() - started,
            )

    while True:
        wait = interval if deadline is None else max(0.1, min(interval, deadline - time.monotonic()))
        if query.awaitTermination(wait):
            report()
            return
        report()
        if deadline is not None and time.monotonic() >= deadline:
            query.stop()
            query.awaitTermination()
            return
