"""What runs on the executors' Python workers for the native engine, and nothing more.

Kept apart from :mod:`.engines` (which resolves, packages and ships models with MLflow on the driver) so a
worker unpickling the UDF imports pyspark, pandas and :mod:`.predictor` only: no MLflow, no config. An
executor environment (a packed venv shipped with ``--archives``) then needs what the predictor needs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

import pandas as pd
from pyspark import Accumulator
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import FloatType, StringType, StructField, StructType

from .predictor import Predictor, PredictorFactory, PredictorOptions, cached_predictor

RESULT_TYPE = StructType([StructField("label", StringType()), StructField("score", FloatType())])


def worker_model_dir(archive_name: str) -> str:
    """Where Spark unpacked the package on this executor."""
    from pyspark import SparkFiles

    return SparkFiles.get(archive_name)


def task_gpu() -> str | None:
    """The GPU address Spark assigned to the running task (``spark.task.resource.gpu.amount``), if any."""
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is None:
        return None
    gpus = context.resources().get("gpu")
    return gpus.addresses[0] if gpus and gpus.addresses else None


def task_threads(options: PredictorOptions) -> PredictorOptions:
    """torch threads = ``spark.task.cpus`` unless configured, so concurrent tasks don't oversubscribe cores."""
    from pyspark import TaskContext

    if options.threads is not None:
        return options
    context = TaskContext.get()
    return replace(options, threads=int(context.cpus()) if context is not None else None)


def native_udf(
    archive_name: str,
    options: PredictorOptions,
    factory: PredictorFactory = Predictor,
    rows: Accumulator | None = None,
):
    """The native engine's pandas UDF over the package shipped as ``archive_name``. Its closure holds only
    small, picklable values: that name, the options, the factory (a module-level callable, pickled by
    reference) and ``rows``, an accumulator of the rows scored (the driver's progress lines read it; a
    retried task counts twice, so it is a progress figure, not a result)."""

    @pandas_udf(RESULT_TYPE)  # type: ignore[call-overload]
    def predict(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        predictor = cached_predictor(worker_model_dir(archive_name), task_threads(options), task_gpu(), factory)
        for texts in batches:
            yield predictor.predict(texts)
            if rows is not None:
                rows.add(len(texts))

    predict.rows = rows  # type: ignore[attr-defined]  # the driver reads the count here
    return predict
