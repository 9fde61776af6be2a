"""Configuration of the scoring job (``conf/score.yaml``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Optional

from ..config.loader import option, require
from ..config.sections import (
    MlflowSection,
    ReportSection,
    ScoreSection,
    SparkSection,
    require_one_of,
    require_table_name,
)

WriteMode = Literal["overwrite", "append", "merge", "incremental", "stream"]
Engine = Literal["native", "mlflow"]


@dataclass
class InputSection:
    path: Optional[str] = option(None, "Delta table (or Parquet files) to score, by path.", exclusive_with="table")
    table: Optional[str] = option(None, "Catalog table to score, e.g. reviews or db.reviews.", exclusive_with="path")
    format: Literal["auto", "delta", "parquet"] = option("auto", "Format of input.path; auto detects _delta_log.")
    text_columns: list[str] = option(
        ["text"], "String columns to label; each gets <c>_sentiment and <c>_sentiment_score."
    )
    key_columns: list[str] = option(
        [], "Columns that identify a row (required by merge and incremental; must be unique and not null)."
    )

    def validate(self, prefix: str) -> None:
        require_one_of(prefix, self.path, self.table)
        require_table_name(f"{prefix}table", self.table)
        require(len(set(self.key_columns)) == len(self.key_columns), f"{prefix}key_columns", "has duplicates")
        require(len(self.text_columns) > 0, f"{prefix}text_columns", "must name at least one column")
        require(len(set(self.text_columns)) == len(self.text_columns), f"{prefix}text_columns", "has duplicates")


@dataclass
class OutputSection:
    path: Optional[str] = option(None, "Delta output location.", exclusive_with="table")
    table: Optional[str] = option(
        None, "Catalog table to write (created as a managed Delta table if missing).", exclusive_with="path"
    )
    mode: WriteMode = option(
        "overwrite",
        "overwrite, append, merge (upsert on input.key_columns), incremental (score only new or changed rows) or "
        "stream (Structured Streaming from the Delta input with a checkpoint: the stream section).",
    )
    deletes: Literal["delete", "keep"] = option(
        "delete", "incremental: rows deleted from the input are deleted from the output (delete) or kept (keep)."
    )
    rescore: Literal["on_model_change", "never"] = option(
        "on_model_change", "incremental: re-score rows labeled by another model version than the one resolved now."
    )
    batch_id: Optional[int] = option(
        None,
        "Increasing run number from the scheduler (e.g. 20261126): a rerun with a batch_id already committed "
        "is skipped (Delta txnAppId/txnVersion). Not with incremental, which tracks its own progress.",
    )
    app_id: Optional[str] = option(
        None, "Delta txnAppId of this job's commits; null: derived from the input (one writer per input)."
    )
    max_retries: int = option(3, "Retries of the write after a Delta concurrent-modification conflict.")
    evolve_schema: bool = option(
        True,
        "An existing output that lacks columns scoring now adds (e.g. <c>_sentiment_probabilities, in tables "
        "scored before it existed) gets them with ALTER TABLE ADD COLUMNS just before the write (old rows: null); "
        "false: the job is refused with one error naming the columns. A column of another type is always refused.",
    )

    def validate(self, prefix: str) -> None:
        require_one_of(prefix, self.path, self.table)
        require_table_name(f"{prefix}table", self.table)
        require(self.batch_id is None or self.batch_id >= 0, f"{prefix}batch_id", "must be >= 0 or null")
        require(
            self.batch_id is None or self.mode != "incremental",
            f"{prefix}batch_id",
            "cannot be combined with mode incremental (it records the input version it processed)",
        )
        require(0 <= self.max_retries <= 20, f"{prefix}max_retries", f"must be in [0, 20], got {self.max_retries}")
        require(self.app_id is None or bool(self.app_id.strip()), f"{prefix}app_id", "must not be blank")


@dataclass
class StreamSection:
    checkpoint: Optional[str] = option(
        None,
        "output.mode stream: the query's checkpoint folder, any Hadoop path (s3a://, abfss://, dbfs:/, a local "
        "folder); its parent must exist. Keep one checkpoint per input, output and write.",
    )
    trigger: Literal["available_now", "processing_time"] = option(
        "available_now",
        "available_now: score everything new since the last run in micro-batches, then stop (for schedulers); "
        "processing_time: run continuously, a micro-batch every stream.interval.",
    )
    interval: str = option("1 minute", "processing_time: time between micro-batches, e.g. '30 seconds'.")
    run_seconds: Optional[float] = option(
        None, "processing_time: stop after this many seconds (null: until the job is stopped)."
    )
    change_data_feed: bool = option(
        False,
        "Read the input's change data feed (delta.enableChangeDataFeed): updated rows are re-scored and deleted "
        "rows deleted from the output; needs write merge. false: the input must be append-only.",
    )
    write: Literal["append", "merge"] = option(
        "append",
        "append: each micro-batch's rows are appended; merge: upserted on input.key_columns (deletes from the "
        "change data feed applied). Either way one Delta commit per micro-batch, idempotent by txnAppId/txnVersion.",
    )
    starting_version: Optional[int] = option(
        None, "First input version to read on a new checkpoint (null: the whole table as it is, then changes)."
    )
    max_files_per_trigger: Optional[int] = option(
        None, "Input files per micro-batch at most (Delta's maxFilesPerTrigger); null: Delta's default (1000)."
    )

    def validate(self, prefix: str) -> None:
        require(self.run_seconds is None or self.run_seconds > 0, f"{prefix}run_seconds", "must be positive or null")
        require(
            self.starting_version is None or self.starting_version >= 0,
            f"{prefix}starting_version",
            "must be >= 0 or null",
        )
        require(
            self.max_files_per_trigger is None or self.max_files_per_trigger > 0,
            f"{prefix}max_files_per_trigger",
            "must be positive or null",
        )
        require(
            not self.change_data_feed or self.write == "merge",
            f"{prefix}write",
            "must be merge when stream.change_data_feed is true (updates and deletes are applied by key)",
        )


@dataclass
class ModelSection:
    uri: str = option(
        "models:/SentimentAnalysis@champion",
        "models:/Name@alias, models:/Name/<version>, models:/Name/latest, models:/m-<id>, runs:/..., or a path.",
    )
    allow_pickle_weights: bool = option(
        False,
        "Load pickle-based weights (pytorch_model.bin) when a model has no safetensors. Unpickling can run code: "
        "only for models you trust.",
    )

    def validate(self, prefix: str) -> None:
        require(bool(self.uri.strip()), f"{prefix}uri", "must not be empty")


@dataclass
class MonitorSection:
    psi_threshold: float = option(
        0.2, "Population stability index (labels or scores vs the model's eval set) above which a run is drifted."
    )
    min_rows: int = option(100, "Runs that scored fewer rows (per text column) are not judged for drift.")

    def validate(self, prefix: str) -> None:
        require(self.psi_threshold > 0, f"{prefix}psi_threshold", f"must be positive, got {self.psi_threshold}")
        require(self.min_rows >= 1, f"{prefix}min_rows", f"must be >= 1, got {self.min_rows}")


@dataclass
class ScoreJobConfig:
    input: InputSection = dataclasses.field(default_factory=InputSection)
    output: OutputSection = dataclasses.field(default_factory=OutputSection)
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    engine: Engine = option("native", "native: our iterator pandas UDF; mlflow: mlflow.pyfunc.spark_udf.")
    score: ScoreSection = dataclasses.field(default_factory=ScoreSection)
    monitor: MonitorSection = dataclasses.field(default_factory=MonitorSection)
    stream: StreamSection = dataclasses.field(default_factory=StreamSection)
    progress_seconds: float = option(
        30.0,
        "Seconds between progress lines while the model runs (tasks done of total, elapsed, ETA; also MLflow "
        "metrics progress_tasks_done/progress_fraction); 0 switches them off.",
    )
    mlflow: MlflowSection = dataclasses.field(
        default_factory=lambda: MlflowSection(experiment="sentiment-scoring"),
        metadata={"help": "MLflow store and the experiment of scoring runs."},
    )
    spark: SparkSection = dataclasses.field(default_factory=SparkSection)
    report: ReportSection = dataclasses.field(default_factory=ReportSection)

    def table_write(self) -> str:
        """How rows reach the output table: ``stream.write`` (append or merge) in stream mode, else
        ``output.mode``."""
        return self.stream.write if self.output.mode == "stream" else self.output.mode

    def validate(self, prefix: str) -> None:
        require(self.progress_seconds >= 0, "progress_seconds", f"must be >= 0, got {self.progress_seconds}")
        if self.output.mode == "stream":
            require(bool(self.stream.checkpoint), "stream.checkpoint", "must be set when output.mode is stream")
            require(
                self.output.batch_id is None,
                "output.batch_id",
                "cannot be combined with mode stream (each micro-batch's id is its txnVersion)",
            )
            if self.stream.write == "merge":
                require(bool(self.input.key_columns), "input.key_columns", "must be set when stream.write is merge")
        if self.output.mode in ("merge", "incremental"):
            require(
                bool(self.input.key_columns), "input.key_columns", f"must be set when output.mode is {self.output.mode}"
            )
