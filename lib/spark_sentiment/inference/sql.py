"""SQL access: register ``sentiment(text)`` so users can ``SELECT sentiment(review) FROM reviews``."""

from __future__ import annotations

from pyspark.sql import SparkSession

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


__all__ = ["register_sentiment_function"]
