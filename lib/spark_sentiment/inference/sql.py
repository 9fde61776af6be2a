"""SQL access: register ``sentiment(text)`` so users can ``SELECT sentiment(review) FROM reviews``."""

from __future__ import annotations

import json
import sys
from typing import Sequence

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession

from ..config.cli import CommandParser, run_command
from ..config.sections import MlflowSection
from ..core.errors import SentimentError
from ..model import tracking
from ..model.registry import resolve_model
from .engines import shipped_native_udf
from .predictor import PredictorOptions


def register_sentiment_function(
    spark: SparkSession,
    model_uri: str = "models:/SentimentAnalysis@champion",
    name: str = "sentiment",
    options: PredictorOptions | None = None,
) -> str:
    """Register ``name(text) -> struct<label string, score float, probabilities map<string, float>>`` backed
    by the native engine; with ``options.granularity == "sentence"``, ``name(text) -> struct<label, score,
    probabilities, sentences array<struct<start, end, label, score>>, evidence struct<...>>`` (a SQL function
    over the engine's UDF, which needs Spark 4's SQL functions).

    The model is resolved now (on the driver) and shipped to executors; returns the resolved model label.
    Null, empty and whitespace-only texts give null label and score.

    Raises
    ------
    SentimentError
        Sentence granularity on a Spark without SQL functions (``CREATE TEMPORARY FUNCTION ... RETURN``).
    """
    if not name.isidentifier():
        raise ValueError(f"function name must be an identifier, got {name!r}")
    options = options or PredictorOptions()
    resolved = resolve_model(model_uri)
    udf, _ = shipped_native_udf(spark, resolved, options)
    if options.granularity != "sentence":
        spark.udf.register(name, udf)
        return resolved.label
    raw = f"{name}_engine"
    spark.udf.register(raw, udf)
    sentences = (
        "transform(arrays_zip(v.sentence_start, v.sentence_end, v.sentence_label, v.sentence_score), z -> "
        "named_struct('start', z.sentence_start, 'end', z.sentence_end, 'label', z.sentence_label, "
        "'score', z.sentence_score))"
    )
    body = (
        f"(WITH r AS (SELECT {raw}(text) AS v) SELECT named_struct('label', v.label, 'score', v.score, "
        f"'probabilities', v.probabilities, 'sentences', {sentences}, "
        f"'evidence', element_at({sentences}, v.evidence + 1)) FROM r)"
    )
    try:
        spark.sql(f"CREATE OR REPLACE TEMPORARY FUNCTION {name}(text STRING) RETURN {body}")
    except AnalysisException as exc:
        raise SentimentError(
            f"SQL function {name} at sentence granularity needs SQL functions (Spark 4); this Spark refused "
            f"CREATE TEMPORARY FUNCTION ({str(exc).splitlines()[0][:200]}); score with score.granularity=sentence"
        ) from None
    return resolved.label


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``spark-sentiment-sql`` (also ``jobs/sql.py``): run statements, print each result row
    as JSON, then the summary (statements run, rows each returned, the model behind ``sentiment``) as the last
    line. Flags only, no config file (the statements are the input); runs on the commands' one runner (one
    scrubbed ``error:`` line and exit 2 on a missing table or path, a statement Spark cannot parse or resolve)."""
    parser = CommandParser(description="Run SQL statements and print each row as JSON.")
    parser.add_argument("statements", nargs="+", help="SQL statements, run in order")
    parser.add_argument("--function", metavar="MODEL_URI", help="register sentiment(text) backed by this model first")
    parser.add_argument(
        "--sentences",
        action="store_true",
        help="with --function: also register sentiment_sentences(text), every sentence labeled (Spark 4)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))

    def body() -> dict[str, object]:
        from ..core.session import get_spark, is_local

        spark = get_spark("spark-sentiment-sql")
        model = None
        if args.function:
            tracking.configure(MlflowSection(), local=is_local(spark))
            model = register_sentiment_function(spark, args.function)
            if args.sentences:
                sentences = PredictorOptions(granularity="sentence")
                register_sentiment_function(spark, args.function, "sentiment_sentences", sentences)
        counts = []
        for statement in args.statements:
            rows = spark.sql(statement).collect()
            for row in rows:
                print(json.dumps(row.asDict(recursive=True), default=str), flush=True)  # data, printed as is
            counts.append(len(rows))
        return {"statements": len(counts), "rows": counts, "model": model}

    return run_command(body)
