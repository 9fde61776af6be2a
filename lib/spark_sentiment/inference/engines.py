"""Two scoring engines with one contract: a function ``text column -> struct<label string, score float,
probabilities map<string, float>>`` (:data:`.worker.RESULT_TYPE`).

* ``native``: an iterator pandas UDF (:mod:`.worker`, all the executors import); a predictor factory (by
  default :class:`predictor.Predictor`) builds the model once per Python worker from the package Spark
  shipped (SparkFiles), kept in a bounded LRU cache, and each Arrow batch is re-batched by length.
* ``mlflow``: ``mlflow.pyfunc.spark_udf`` over the registered pipeline, the path MLflow users know.

Rows that are not scorable (null, empty, whitespace) get null label and score under both engines. Invalid
UTF-8 byte sequences (Spark strings are not validated) are replaced by U+FFFD before scoring, so a broken
byte never fails a task; the stored text is left as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from ..core.errors import ModelError
from ..model import compat
from ..model.registry import ResolvedModel
from .live import shared_listener
from .package import ModelPackage, build_package, ship, verify
from .predictor import Predictor, PredictorFactory, PredictorOptions, resolve_window
from .text_policy import scorable
from .worker import RESULT_TYPE, ChoicesParam, Reports, native_udf

__all__ = ["RESULT_TYPE", "Reports", "ScoreFn", "native_udf", "scoring_function", "shipped_native_udf"]


@dataclass(frozen=True)
class ScoreFn:
    """A text column -> the engine's result struct (:func:`.worker.result_type` of ``granularity``), and where
    the native engine's tasks report texts done and precision choices (:class:`.worker.Reports`; empty for
    the mlflow engine and under Spark Connect)."""

    apply: Callable[[Column], Column]
    granularity: str = "review"
    reports: Reports = Reports()

    def __call__(self, column: Column) -> Column:
        return self.apply(column)


def checked_package(resolved: ResolvedModel, allow_pickle_weights: bool = False) -> ModelPackage:
    """The model's package, with weights checked (safetensors only unless allowed) and a load test on the
    driver (once per process), so a broken or unsafe model fails before any data is read."""
    package = build_package(resolved, allow_pickle_weights=allow_pickle_weights)
    verify(package, allow_pickle_weights)
    return package


def shipped_native_udf(
    spark: SparkSession, resolved: ResolvedModel, options: PredictorOptions, factory: PredictorFactory = Predictor
) -> tuple[Any, Reports]:
    """Package ``resolved`` once on the driver, ship it to the executors; the native UDF and where its tasks
    report."""
    package = checked_package(resolved, options.allow_pickle_weights)
    ship(spark, package)
    reports = task_reports(spark)
    return native_udf(package.archive_name, options, factory, reports), reports


def task_reports(spark: SparkSession) -> Reports:
    """Accumulators and the live listener for this session's tasks; none under Spark Connect (no
    accumulators there, and the workers cannot reach the client)."""
    context = spark_context(spark)
    if context is None:
        return Reports()
    conf = context.getConf()
    listener = shared_listener(conf.get("spark.driver.host") or "localhost", conf.get("spark.driver.bindAddress"))
    return Reports(
        rows=context.accumulator(0),
        live=listener.address if listener is not None else None,
        choices=context.accumulator({}, ChoicesParam()),
    )


def spark_context(spark: SparkSession):
    """The session's SparkContext, or None where the client has none (Spark Connect)."""
    try:
        return spark.sparkContext
    except (AttributeError, NotImplementedError):  # Spark Connect raises PySparkAttributeError here
        return None


def mlflow_udf(spark: SparkSession, resolved: ResolvedModel, package: ModelPackage, options: PredictorOptions):
    """``mlflow.pyfunc.spark_udf`` returning ``struct<label, score, probabilities>`` (artifacts shipped by
    MLflow). Where spark_udf takes no map result (MLflow 2.12), a two-label model's probabilities are its
    score and the rest; more labels are refused.

    The model's pyfunc reads reviews through the window given as its model_config: the one the native
    engine would use for these options, so both engines read the same tokens."""
    import mlflow

    window = resolve_window(package.window, options)
    if package.window_recorded:
        model_config = window.to_config()
    elif window.strategy == "head":  # MLflow's own transformers pyfunc: tokenizer arguments
        model_config = {"truncation": True, "max_length": window.max_length}
    else:
        raise ModelError(
            f"model {resolved.label}: engine mlflow cannot read the {window.strategy} of a review with a model "
            "logged without a truncation window (its pyfunc reads the head); use engine native"
        )
    config_argument = {"model_config": model_config}
    if not compat.spark_udf_takes_model_config():  # MLflow < 2.13: the model reads as it was logged
        if not (package.window_recorded and model_config == package.window.to_config()):
            raise ModelError(
                f"model {resolved.label}: engine mlflow under MLflow {compat.mlflow_version()} reads reviews only "
                f"through the recorded window ({package.window.to_config()}), not {model_config}; use engine "
                "native, or leave score.truncation/max_length unset"
            )
        config_argument = {}
    labels = [name for _, name in sorted(package.id2label.items())]
    maps = compat.spark_udf_returns_maps()
    if not maps and len(labels) != 2:
        raise ModelError(
            f"model {resolved.label}: engine mlflow under MLflow {compat.mlflow_version()} cannot return the "
            f"probabilities of {len(labels)} labels (its spark_udf takes no map result); use engine native"
        )
    udf = mlflow.pyfunc.spark_udf(
        spark,
        model_uri=resolved.uri,
        result_type="label string, score double" + (", probabilities map<string, double>" if maps else ""),
        env_manager="local",
        **config_argument,
    )

    def apply(column: Column) -> Column:
        # The pipeline cannot take null; feed a placeholder and null the result where the text is not scorable.
        result = udf(F.when(scorable(column), column).otherwise(F.lit(".")))
        if maps:
            probabilities = result["probabilities"].cast("map<string, float>")
        else:  # two labels: the other one's probability is the rest
            label, score = result["label"], result["score"].cast("float")
            other = F.when(label == labels[0], F.lit(labels[1])).otherwise(F.lit(labels[0]))
            probabilities = F.map_from_arrays(F.array(label, other), F.array(score, 1 - score))
        return F.struct(
            result["label"].alias("label"),
            result["score"].cast("float").alias("score"),
            probabilities.alias("probabilities"),
        )

    return apply


def scoring_function(
    spark: SparkSession,
    resolved: ResolvedModel,
    engine: str,
    options: PredictorOptions,
    factory: PredictorFactory = Predictor,
) -> ScoreFn:
    """Build the engine once on the driver; returns ``column -> struct<label, score, probabilities>``.

    ``factory`` builds the native engine's per-worker predictor (the mlflow engine loads MLflow's pyfunc).
    """
    if engine == "mlflow":
        if options.granularity != "review":
            raise ModelError(
                f"score.granularity {options.granularity} needs engine native (engine mlflow runs the model as "
                "MLflow's pyfunc, one label per text)"
            )
        package = checked_package(resolved, options.allow_pickle_weights)  # same weight policy for both engines
        raw, reports = mlflow_udf(spark, resolved, package, options), Reports()
    else:
        raw, reports = shipped_native_udf(spark, resolved, options, factory)

    def score(column: Column) -> Column:
        # Spark 4 replaces invalid UTF-8 bytes; Spark 3.5 has no such function (its strings pass as they are).
        text = F.make_valid_utf8(column) if hasattr(F, "make_valid_utf8") else column
        return F.when(scorable(text), raw(text))

    return ScoreFn(score, options.granularity, reports)
