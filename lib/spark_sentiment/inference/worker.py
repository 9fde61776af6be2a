"""What runs on the executors' Python workers for the native engine, and nothing more.

Kept apart from :mod:`.engines` (which resolves, packages and ships models with MLflow on the driver) so a
worker unpickling the UDF imports pyspark, pandas and :mod:`.predictor` only: no MLflow, no config. An
executor environment (a packed venv shipped with ``--archives``) then needs what the predictor needs.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, replace
from typing import Iterator

import pandas as pd
from pyspark import Accumulator, AccumulatorParam
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    FloatType,
    IntegerType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from .live import Address, RowsReporter
from .predictor import Predictor, PredictorFactory, PredictorOptions, cached_predictor

# label, its probability, and every label's probability (calibrated; they sum to 1)
RESULT_TYPE = StructType(
    [
        StructField("label", StringType()),
        StructField("score", FloatType()),
        StructField("probabilities", MapType(StringType(), FloatType())),
    ]
)
# score.granularity sentence: the review's label, score and probabilities, then one entry per sentence in
# parallel arrays (offsets into the text, label, its probability) and the index of the evidence sentence;
# the column contract (columns.py) zips them into array<struct> in Spark, which every Spark version's Arrow
# conversion of pandas UDF results takes.
SENTENCE_RESULT_TYPE = StructType(
    RESULT_TYPE.fields
    + [
        StructField("sentence_start", ArrayType(IntegerType())),
        StructField("sentence_end", ArrayType(IntegerType())),
        StructField("sentence_label", ArrayType(StringType())),
        StructField("sentence_score", ArrayType(DoubleType())),
        StructField("evidence", IntegerType()),
    ]
)


def result_type(granularity: str) -> StructType:
    return SENTENCE_RESULT_TYPE if granularity == "sentence" else RESULT_TYPE


def result_frame(frame: pd.DataFrame, granularity: str = "review") -> pd.DataFrame:
    """A predictor's frame in the result type's columns (one a predictor does not give, such as
    ``probabilities`` from a factory that only labels: null)."""
    names = [f.name for f in result_type(granularity).fields]
    missing = {name: None for name in names if name not in frame.columns}
    return (frame.assign(**missing) if missing else frame)[names]


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


class ChoicesParam(AccumulatorParam):
    """Accumulates the precision choices workers made: ``{"<cpu> | <chosen>": {choice..., "tasks": n}}``."""

    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, value1: dict, value2: dict) -> dict:
        for key, record in value2.items():
            if key in value1:
                value1[key] = {**value1[key], "tasks": value1[key]["tasks"] + record["tasks"]}
            else:
                value1[key] = dict(record)
        return value1


def choice_record(predictor) -> dict:
    """What a task adds to the choices accumulator (nothing for a predictor that made no choice)."""
    choice = getattr(predictor, "choice", None)
    if choice is None:
        return {}
    return {f"{choice.cpu} | {choice.chosen}": {**choice.as_dict(), "tasks": 1}}


@functools.cache
def _reports_progress(kind: type) -> bool:
    return "progress" in inspect.signature(kind.predict).parameters


@dataclass(frozen=True)
class Reports:
    """Where the native UDF's tasks report to the driver (each optional; none under Spark Connect, where the
    client has no SparkContext and the workers cannot reach it): ``rows``, an accumulator of the texts scored
    (a retried task counts twice, so it is a progress figure, not a result), ``live``, where running tasks send
    the texts done (:mod:`.live`), and ``choices``, an accumulator of the precision each worker chose
    (:class:`ChoicesParam`)."""

    rows: Accumulator | None = None
    live: Address | None = None
    choices: Accumulator | None = None


def native_udf(
    archive_name: str,
    options: PredictorOptions,
    factory: PredictorFactory = Predictor,
    reports: Reports = Reports(),
):
    """The native engine's pandas UDF over the package shipped as ``archive_name``. Its closure holds only
    small, picklable values: that name, the options, the factory (a module-level callable, pickled by
    reference) and ``reports``."""

    granularity = options.granularity
    rows, live, choices = reports.rows, reports.live, reports.choices

    @pandas_udf(result_type(granularity))  # type: ignore[call-overload]
    def predict(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        predictor = cached_predictor(worker_model_dir(archive_name), task_threads(options), task_gpu(), factory)
        if choices is not None:
            choices.add(choice_record(predictor))
        reporter = RowsReporter(live) if live is not None else None
        per_batch = reporter is not None and _reports_progress(type(predictor))
        try:
            for texts in batches:
                if per_batch:
                    found = predictor.predict(texts, progress=reporter.add)  # type: ignore[call-arg,union-attr]
                else:
                    found = predictor.predict(texts)
                    if reporter is not None:
                        reporter.add(len(texts))
                yield result_frame(found, granularity)
                if rows is not None:
                    rows.add(len(texts))
        finally:
            if reporter is not None:
                reporter.close()

    return predict
