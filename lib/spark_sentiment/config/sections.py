"""Config sections and checks shared by the jobs: MLflow, Spark, how a model scores, table names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

from ..core.names import is_table_identifier
from .loader import option, require


@dataclass
class ReportSection:
    summary_path: Optional[str] = option(
        None,
        "Also write the run summary (the last stdout line) as a JSON file here: any Hadoop path (s3a://, abfss://, "
        "dbfs:/, hdfs://, local), replaced by each run. For schedulers that never see the driver's stdout.",
    )
    runs_table: Optional[str] = option(
        None,
        "Append one row per run (job, status, exit code, time, model, input, output, the summary as JSON) to this "
        "Delta table: a path, or a catalog name such as main.ops.sentiment_runs. Created by the first run.",
    )
    task_values: bool = option(
        True,
        "In a Databricks job, set the task values status, exit_code and summary (dbutils.jobs.taskValues) for "
        "later tasks; ignored where dbutils does not exist.",
    )


@dataclass
class MlflowSection:
    tracking_uri: Optional[str] = option(
        None,
        "MLflow tracking URI. Unset: $MLFLOW_TRACKING_URI, else 'databricks' in a Databricks runtime, else (local "
        "runs only) a SQLite store under the data dir; a cluster run with none of these fails.",
    )
    registry_uri: Optional[str] = option(
        None,
        "MLflow model registry URI (e.g. databricks-uc). Unset: $MLFLOW_REGISTRY_URI, else MLflow's default for "
        "the tracking store (databricks-uc for a Databricks workspace, else the tracking store).",
    )
    experiment: str = option("sentiment-training", "MLflow experiment that receives the job's run.")

    def validate(self, prefix: str) -> None:
        require(bool(self.experiment.strip()), f"{prefix}experiment", "must not be empty")


@dataclass
class SparkSection:
    app_name: str = option("spark-sentiment", "Spark application name (kept if spark-submit already set one).")
    conf: dict[str, Any] = option({}, "Extra Spark confs, applied only where spark-submit/cluster set none.")


def require_table_name(key: str, value: Optional[str]) -> None:
    """Refuse anything but a plain identifier up front: a table name can never smuggle SQL in."""
    require(
        value is None or is_table_identifier(value),
        key,
        f"must be a table name like name, db.name or catalog.db.name (got {value!r})",
    )


def require_one_of(prefix: str, path: Optional[str], table: Optional[str]) -> None:
    require(
        bool(path) != bool(table),
        f"{prefix}path",
        f"or {prefix}table: set exactly one (got path={path!r}, table={table!r})",
    )


@dataclass(frozen=True)
class PredictorSection:
    """How a Python worker runs the model: the options of ``score`` that the native engine's predictor reads.
    ``inference.predictor.PredictorOptions`` extends this class, so a new option is one field here."""

    batch_size: int = option(32, "Rows per forward pass (native engine); Arrow batches are re-batched to this.")
    max_tokens: Optional[int] = option(
        None, "Cap on padded tokens per forward pass (batches sized by tokens, not rows); null = rows only."
    )
    max_length: Optional[int] = option(
        None, "Tokens read per review; null = the length recorded with the model (its tokenizer's for older models)."
    )
    truncation: Optional[Literal["head", "tail", "head_tail"]] = option(
        None, "Which tokens of a longer review are read; null = as recorded with the model (head for older models)."
    )
    head_tokens: Optional[int] = option(None, "head_tail: tokens read from the start; null = as recorded.")
    profile: Literal["model", "fast"] = option(
        "model",
        "model: the window recorded with the model. fast: at most 256 tokens, head_tail (docs/quality.md: "
        "rows/s and accuracy against the default per CPU kind); explicit score.max_length/truncation/precision win.",
    )
    threads: Optional[int] = option(None, "torch threads per Python worker; null = spark.task.cpus.")
    device: Literal["auto", "cpu", "cuda"] = option("auto", "auto: the GPU Spark assigned to the task, else CPU.")
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = option(
        "auto",
        "auto: bf16 (or fp16) on GPU; on CPU the fastest of fp32, bf16 and (score.runtime) OpenVINO's graph in "
        "bf16 and int8, timed on the real model by each worker (a few seconds, once per CPU model); bf16 only for "
        "models whose recorded bf16 labels agree with fp32 (score.bf16_min_agreement), int8 only for models whose "
        "recorded int8 labels do (score.int8_min_agreement, score.int8_max_accuracy_drop). int8: OpenVINO's int8 "
        "graph (the openvino extra), on the CPU. The summary gives the choice and each candidate's rows/s. native "
        "engine only.",
    )
    runtime: Literal["auto", "torch", "openvino"] = option(
        "auto",
        "What runs the model on a CPU. auto: with precision auto, OpenVINO's graph of the model (the openvino "
        "extra, where the worker has it; else torch, the reason in the summary) is one of the timed candidates; "
        "with a configured precision, torch (int8: OpenVINO). torch: torch only. openvino: OpenVINO in the "
        "configured precision (auto: its fp32, bf16 and int8 timed, as allowed), on the CPU even where a GPU is "
        "assigned; a worker without the openvino package fails. native engine only.",
    )
    granularity: Literal["review", "sentence"] = option(
        "review",
        "review: one label per text from its truncation window. sentence: every sentence of the whole text "
        "scored (no token cap; a sentence longer than the window cut into pieces), the text's label by the rule "
        "recorded with the model (NEGATIVE / NEUTRAL / POSITIVE / MIXED), plus <c>_sentences (offsets, label, "
        "score) and <c>_sentiment_evidence. native engine only.",
    )
    bf16_min_agreement: float = option(
        0.99,
        "precision auto on CPU: bf16 is a candidate only if its labels agreed with fp32 on at least this fraction "
        "of the model's eval sample (measured and recorded when the model is trained).",
    )
    int8_min_agreement: float = option(
        0.995,
        "precision auto on CPU: OpenVINO int8 is a candidate only if its labels agreed with fp32 on at least this "
        "fraction of the model's eval sample (measured and recorded at training where openvino is installed).",
    )
    int8_max_accuracy_drop: float = option(
        0.003,
        "precision auto on CPU: and only if int8 cost at most this much accuracy on that sample (0.003: 0.3 points).",
    )

    def validate(self, prefix: str) -> None:
        require(1 <= self.batch_size <= 4096, f"{prefix}batch_size", f"must be in [1, 4096], got {self.batch_size}")
        require(self.max_tokens is None or self.max_tokens >= 8, f"{prefix}max_tokens", "must be >= 8 or null")
        require(self.max_length is None or self.max_length >= 8, f"{prefix}max_length", "must be >= 8 or null")
        require(
            self.head_tokens is None or 0 <= self.head_tokens < (self.max_length or 8192),
            f"{prefix}head_tokens",
            f"must be >= 0 and below score.max_length, or null, got {self.head_tokens}",
        )
        require(self.threads is None or self.threads > 0, f"{prefix}threads", "must be positive or null")
        require(
            not (self.runtime == "openvino" and self.device == "cuda"),
            f"{prefix}runtime",
            "openvino runs on the CPU; it cannot be combined with score.device cuda",
        )
        require(
            not (self.precision == "int8" and (self.runtime == "torch" or self.device == "cuda")),
            f"{prefix}precision",
            "int8 is OpenVINO's, on the CPU: it needs score.runtime auto or openvino and score.device auto or cpu",
        )
        for key in ("bf16_min_agreement", "int8_min_agreement", "int8_max_accuracy_drop"):
            value = getattr(self, key)
            require(0.0 <= value <= 1.0, f"{prefix}{key}", f"must be in [0, 1], got {value}")


@dataclass(frozen=True)
class ScoreSection(PredictorSection):
    """The ``score`` section: the predictor's options and how the job spreads the input over tasks."""

    partitions: Optional[int] = option(
        None,
        "Repartition the input into N partitions before scoring; null: raise to spark.default.parallelism if below.",
    )

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        require(self.partitions is None or self.partitions > 0, f"{prefix}partitions", "must be positive or null")
