"""Two scoring engines with one contract: a function ``text column -> struct<label string, score float>``.

* ``native``: an iterator pandas UDF; the model is built by a factory once per Python worker from the
  package Spark shipped (SparkFiles), and each Arrow batch is re-batched by length.
* ``mlflow``: ``mlflow.pyfunc.spark_udf`` over the registered pipeline, the path MLflow users know.

Rows that are not scorable (null, empty, whitespace) get null label and score under both engines. Invalid
UTF-8 byte sequences (Spark strings are not validated) are replaced by U+FFFD before scoring, so a broken
byte never fails a task; the stored text is left as it was.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pandas as pd
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import FloatType, StringType, StructField, StructType

from ..model.registry import ResolvedModel
from .package import ModelPackage, build_package, ship, verify
from .predictor import PredictorOptions
from .text_policy import scorable

RESULT_TYPE = StructType([StructField("label", StringType()), StructField("score", FloatType())])
ScoreFn = Callable[[Column], Column]


def _worker_model_dir(archive_name: str) -> str:
    """Where Spark unpacked the package on this executor."""
    from pyspark import SparkFiles

    return SparkFiles.get(archive_name)


def _task_gpu() -> str | None:
    """The GPU address Spark assigned to the running task (``spark.task.resource.gpu.amount``), if any."""
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is None:
        return None
    gpus = context.resources().get("gpu")
    return gpus.addresses[0] if gpus and gpus.addresses else None


def _task_threads(options: PredictorOptions) -> PredictorOptions:
    """torch threads = ``spark.task.cpus`` unless configured, so concurrent tasks don't oversubscribe cores."""
    from dataclasses import replace

    from pyspark import TaskContext

    if options.threads is not None:
        return options
    context = TaskContext.get()
    return replace(options, threads=int(context.cpus()) if context is not None else None)


def native_udf(package: ModelPackage, options: PredictorOptions):
    """The native engine's pandas UDF (closure holds only small, picklable values)."""
    archive_name = package.archive_name

    @pandas_udf(RESULT_TYPE)  # type: ignore[call-overload]
    def predict(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        from spark_sentiment import faults
        from spark_sentiment.scoring.predictor import cached_predictor

        faults.in_worker()
        predictor = cached_predictor(_worker_model_dir(archive_name), _task_threads(options), _task_gpu())
        for texts in batches:
            yield predictor.predict(texts)

    return predict


def checked_package(resolved: ResolvedModel, allow_pickle_weights: bool = False) -> ModelPackage:
    """The model's package, with weights checked (safetensors only unless allowed) and a load test on the
    driver (once per process), so a broken or unsafe model fails before any data is read."""
    package = build_package(resolved, allow_pickle_weights=allow_pickle_weights)
    verify(package, allow_pickle_weights)
    return package


def shipped_native_udf(spark: SparkSession, resolved: ResolvedModel, options: PredictorOptions):
    """Package ``resolved`` once on the driver, ship it to the executors, and return the native UDF."""
    package = checked_package(resolved, options.allow_pickle_weights)
    ship(spark, package)
    return native_udf(package, options)


def mlflow_udf(spark: SparkSession, resolved: ResolvedModel):
    """``mlflow.pyfunc.spark_udf`` returning ``struct<label, score>`` (artifacts shipped by MLflow)."""
    import mlflow

    udf = mlflow.pyfunc.spark_udf(
        spark, model_uri=resolved.uri, result_type="label string, score double", env_manager="local"
    )

    def apply(column: Column) -> Column:
        # The pipeline cannot take null; feed a placeholder and null the result where the text is not scorable.
        result = udf(F.when(scorable(column), column).otherwise(F.lit(".")))
        return F.struct(result["label"].alias("label"), result["score"].cast("float").alias("score"))

    return apply


def scoring_function(spark: SparkSession, resolved: ResolvedModel, engine: str, options: PredictorOptions) -> ScoreFn:
    """Build the engine once on the driver; returns ``column -> struct<label, score>``."""
    if engine == "mlflow":
        checked_package(resolved, options.allow_pickle_weights)  # same weight policy for both engines
        raw = mlflow_udf(spark, resolved)
    else:
        raw = shipped_native_udf(spark, resolved, options)

    def score(column: Column) -> Column:
        text = F.make_valid_utf8(column)
        return F.when(scorable(text), raw(text))

    return score
