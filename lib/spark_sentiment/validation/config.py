"""Configuration of the evaluation job (``conf/evaluate.yaml``): champion/challenger on labeled reviews."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Optional

from ..config.loader import option, require
from ..config.sections import MlflowSection, ReportSection, ScoreSection, SparkSection, require_table_name
from ..core.paths import default_imdb_source

Metric = Literal["accuracy", "f1", "precision", "recall", "roc_auc"]


@dataclass
class EvalInputSection:
    path: Optional[str] = option(
        None,
        "Labeled reviews: a Delta table, Parquet, a folder with a <split> (IMDB_DATA layout), an aclImdb folder "
        "or hf:<dataset>. Null (and no table): $IMDB_DATA, else hf:imdb.",
        exclusive_with="table",
    )
    table: Optional[str] = option(None, "Catalog table of labeled reviews (instead of path).", exclusive_with="path")
    split: str = option("test", "Split to read when path is a folder of splits or a hub dataset.")
    text_column: str = option("text", "Column with the review text.")
    label_column: str = option("label", "True label: class ids (0/1) or the model's label names.")
    label_map: dict[str, str] = option(
        {},
        "True label value -> model label name, e.g. SST grades {1: NEGATIVE, 2: NEGATIVE, 3: NEUTRAL, 4: POSITIVE, "
        "5: POSITIVE}, or {0: NEGATIVE, 1: POSITIVE} to read IMDB's ids against a three-label model; values it "
        "does not map fail the job naming the value. Empty: ids through the model's id2label, or names.",
    )
    rows: Optional[int] = option(2000, "Rows evaluated, drawn with a seeded shuffle; null = all.")
    seed: int = option(42, "Seed of that shuffle (both models see the same rows).")

    def validate(self, prefix: str) -> None:
        require(not (self.path and self.table), f"{prefix}path", "or input.table: set one, not both")
        require_table_name(f"{prefix}table", self.table)
        require(self.rows is None or self.rows > 0, f"{prefix}rows", "must be positive or null")

    def source(self) -> str:
        """What to read: the table, the path, or the default IMDB location."""
        return self.table or self.path or default_imdb_source()


@dataclass
class ModelsSection:
    candidate: str = option("models:/SentimentAnalysis@candidate", "The model to evaluate (and maybe promote).")
    champion: Optional[str] = option(
        "models:/SentimentAnalysis@champion", "The model to beat; null or a missing alias: no champion."
    )

    def validate(self, prefix: str) -> None:
        require(bool(self.candidate.strip()), f"{prefix}candidate", "must not be empty")


@dataclass
class PromotionSection:
    metric: Metric = option(
        "f1",
        "Metric that decides: accuracy, f1, precision, recall or roc_auc. Two labels: of promotion.positive_label; "
        "more labels: the macro mean over the labels (macro-F1, one-vs-rest ROC AUC).",
    )
    margin: float = option(0.0, "The candidate must beat the champion by MORE than this on the metric.")
    promote: bool = option(True, "Move @champion to a winning candidate (false: evaluate and report only).")
    positive_label: str = option("POSITIVE", "Label treated as positive for precision, recall, F1 and ROC.")
    kept_champion_exit_code: int = option(
        3,
        "Exit code when the candidate is not promoted (kept_champion). 3 lets a scheduler branch on it; 0 makes it "
        "a success for schedulers that only know zero/non-zero (the summary's status still says kept_champion).",
    )

    def validate(self, prefix: str) -> None:
        require(0 <= self.margin < 1, f"{prefix}margin", f"must be in [0, 1), got {self.margin}")
        code = self.kept_champion_exit_code
        require(code in (0, 3), f"{prefix}kept_champion_exit_code", f"must be 0 or 3, got {code}")


@dataclass
class EvaluateJobConfig:
    input: EvalInputSection = dataclasses.field(default_factory=EvalInputSection)
    models: ModelsSection = dataclasses.field(default_factory=ModelsSection)
    promotion: PromotionSection = dataclasses.field(default_factory=PromotionSection)
    engine: Literal["native", "mlflow"] = option("native", "Scoring engine used for both models.")
    score: ScoreSection = dataclasses.field(default_factory=ScoreSection)
    mlflow: MlflowSection = dataclasses.field(
        default_factory=lambda: MlflowSection(experiment="sentiment-evaluation"),
        metadata={"help": "MLflow store and the experiment of evaluation runs."},
    )
    spark: SparkSection = dataclasses.field(default_factory=SparkSection)
    report: ReportSection = dataclasses.field(default_factory=ReportSection)
