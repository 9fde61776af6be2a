"""The output column contract: what scoring adds to a table, shared by the scoring and validation jobs.

Per text column ``c``: ``c_sentiment`` (label, string), ``c_sentiment_score`` (probability of that label,
float) and ``c_sentiment_probabilities`` (every label's probability, ``map<string, float>``, calibrated by
the temperature recorded with the model; they sum to 1); per row: ``sentiment_model`` (the concrete model
that labeled it) and ``scored_at``.

At ``score.granularity: sentence`` ``c_sentiment`` may also be MIXED, and each text column also gets
``c_sentences`` (``array<struct<start int, end int, label string, score double>>``: every sentence's
code-point offsets into ``c``, label and probability; ``substring(c, s.start + 1, s.end - s.start)`` is its
text) and ``c_sentiment_evidence`` (the sentence, of the same struct, that most supports the review's label).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ..core.errors import DataError
from ..core.names import quote
from ..model.registry import ResolvedModel
from .engines import ScoreFn, scoring_function
from .predictor import PredictorOptions

SENTIMENT_SUFFIX = "_sentiment"
SCORE_SUFFIX = "_sentiment_score"
PROBABILITIES_SUFFIX = "_sentiment_probabilities"
SENTENCES_SUFFIX = "_sentences"
EVIDENCE_SUFFIX = "_sentiment_evidence"
GRANULARITIES = ("review", "sentence")
MODEL_COLUMN = "sentiment_model"
TIME_COLUMN = "scored_at"


def label_column(text_column: str) -> str:
    return f"{text_column}{SENTIMENT_SUFFIX}"


def score_column(text_column: str) -> str:
    return f"{text_column}{SCORE_SUFFIX}"


def probabilities_column(text_column: str) -> str:
    return f"{text_column}{PROBABILITIES_SUFFIX}"


def sentence_columns(text_column: str) -> list[str]:
    """The columns only sentence granularity adds for ``text_column``."""
    return [f"{text_column}{SENTENCES_SUFFIX}", f"{text_column}{EVIDENCE_SUFFIX}"]


def added_columns(text_columns: list[str], granularity: str = "review") -> list[str]:
    """The columns scoring adds, in order, for ``text_columns`` at ``granularity``."""
    out = []
    for c in text_columns:
        out += [label_column(c), score_column(c), probabilities_column(c)]
        if granularity == "sentence":
            out += sentence_columns(c)
    return out + [MODEL_COLUMN, TIME_COLUMN]


def other_granularity_columns(text_columns: list[str], granularity: str) -> list[str]:
    """Columns that scoring at the other granularity adds and this one does not."""
    other = "review" if granularity == "sentence" else "sentence"
    return [c for c in added_columns(text_columns, other) if c not in added_columns(text_columns, granularity)]


def check_output_columns(columns: list[str], text_columns: list[str], granularity: str = "review") -> None:
    """The columns scoring adds must not exist in the input (a scored table fed back in, say)."""
    clashes = [c for c in added_columns(text_columns, granularity) if c in columns]
    if clashes:
        raise DataError(f"input already has column '{clashes[0]}'; score the original table, not a scored one")


def _sentences(result: Column) -> Column:
    """``array<struct<start, end, label, score>>`` from the sentence result's parallel arrays."""
    parts = ["sentence_start", "sentence_end", "sentence_label", "sentence_score"]
    zipped = F.arrays_zip(*[result[name].alias(name) for name in parts])
    return F.transform(
        zipped,
        lambda s: F.struct(
            s["sentence_start"].alias("start"),
            s["sentence_end"].alias("end"),
            s["sentence_label"].alias("label"),
            s["sentence_score"].alias("score"),
        ),
    )


def label_columns(df: DataFrame, score: ScoreFn, model_label: str, text_columns: list[str]) -> DataFrame:
    """All input columns plus the contract's columns (at ``score.granularity``). Lazy: nothing is scored until
    an action runs."""
    granularity = score.granularity
    check_output_columns(df.columns, text_columns, granularity)
    columns = [F.col(quote(c)) for c in df.columns]
    for c in text_columns:
        result = score(F.col(quote(c)))
        columns += [
            result["label"].alias(label_column(c)),
            result["score"].alias(score_column(c)),
            result["probabilities"].alias(probabilities_column(c)),
        ]
        if granularity == "sentence":
            sentences, evidence = sentence_columns(c)
            zipped = _sentences(result)
            columns += [
                F.when(result["sentence_start"].isNotNull(), zipped).alias(sentences),
                F.element_at(zipped, result["evidence"] + 1).alias(evidence),
            ]
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
    options = options or PredictorOptions()
    score = scoring_function(spark, resolved, engine, options)
    return label_columns(df, score, resolved.label, text_columns)
