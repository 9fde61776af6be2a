"""SQL access: register ``sentiment(text)`` so users can ``SELECT sentiment(review) FROM reviews``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from pyspark.sql import SparkSession

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
    """Register ``name(text) -> struct<label string, score float>`` backed by the native engine.

    The model is resolved now (on the driver) and shipped to executors; returns the resolved model label.
    Null, empty and whitespace-only texts give null label and score.
    """
    if not name.isidentifier():
        raise ValueError(f"function name must be an identifier, got {name!r}")
    resolved = resolve_model(model_uri)
    spark.udf.register(name, shipped_native_udf(spark, resolved, options or PredictorOptions()))
    return resolved.label


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``spark-sentiment-sql`` (also ``jobs/sql.py``): run statements, print rows as JSON."""
    parser = argparse.ArgumentParser(description="Run SQL statements and print each row as JSON.")
    parser.add_argument("statements", nargs="+", help="SQL statements, run in order")
    parser.add_argument("--function", metavar="MODEL_URI", help="register sentiment(text) backed by this model first")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))

    from ..core.session import get_spark, is_local

    try:
        spark = get_spark("spark-sentiment-sql")
        if args.function:
            tracking.configure(MlflowSection(), local=is_local(spark))
            register_sentiment_function(spark, args.function)
        for statement in args.statements:
            for row in spark.sql(statement).collect():
                print(json.dumps(row.asDict(recursive=True), default=str), flush=True)
    except SentimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
