"""The output column contract: what scoring adds to a table, shared by the scoring and validation jobs.

Per text column ``c``: ``c_sentiment`` (label, string) and ``c_sentiment_score`` (probability of that label,
float); per row: ``sentiment_model`` (the concrete model that labeled it) and ``scored_at``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..core.errors import DataError
from ..core.names import quote
from ..model.registry import ResolvedModel
from .engines import ScoreFn, scoring_function
from .predictor import PredictorOptions

SENTIMENT_SUFFIX = "_sentiment"
SCORE_SUFFIX = "_sentiment_score"
MODEL_COLUMN = "sentiment_model"
TIME_COLUMN = "scored_at"


def label_column(text_column: str) -> str:
    return f"{text_column}{SENTIMENT_SUFFIX}"


def score_column(text_column: str) -> str:
    return f"{text_column}{SCORE_SUFFIX}"


def added_columns(text_columns: list[str]) -> list[str]:
    """The columns scoring adds, in order, for ``text_columns``."""
    return [name for c in text_columns for name in (label_column(c), score_column(c))] + [MODEL_COLUMN, TIME_COLUMN]


def check_output_columns(columns: list[str], text_columns: list[str]) -> None:
    """The columns scoring adds must not exist in the input (a scored table fed back in, say)."""
    clashes = [c for c in added_columns(text_columns) if c in columns]
    if clashes:
        raise DataError(f"input already has column '{clashes[0]}'; score the original table, not a scored one")


def label_columns(df: DataFrame, score: ScoreFn, model_label: str, text_columns: list[str]) -> DataFrame:
    """All input columns plus the contract's columns. Lazy: nothing is scored until an action runs."""
    check_output_columns(df.columns, text_columns)
    columns = [F.col(quote(c)) for c in df.columns]
    for c in text_columns:
        result = score(F.col(quote(c)))
        columns += [result["label"].alias(label_column(c)), result["score"].alias(score_column(c))]
    columns += [F.lit(model_label).alias(MODEL_COLUMN), F.current_timestamp().alias(TIME_COLUMN)]
    return df.select(*columns)


def add_sentiment_columns(
    spark: SparkSession,
    df: DataFrame,
    resolved: ResolvedModel,
    text_columns: list[str],
    engine: str = "native",
    options: PredictorOptions | None = None,
) -> DataFrame:
    """:func:`label_columns` with the engine built from ``resolved`` (benchmarks and notebooks)."""
    score = scoring_function(spark, resolved, engine, options or PredictorOptions())
    return label_columns(df, score, resolved.label, text_columns)
