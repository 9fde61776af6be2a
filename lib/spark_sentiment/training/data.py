"""Labeled training data: resolve train/eval sources, validate labels, draw the seeded samples."""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import pandas as pd
from pyspark.sql import SparkSession

from ..core.errors import DataError
from ..io.tables import TableRef, has_split, read_pandas, resolve_source
from .config import DataSection


@dataclass(frozen=True)
class TrainingSources:
    train: TableRef
    eval: TableRef | None  # None: hold out eval rows from the shuffled train source


def plan_sources(spark: SparkSession, cfg: DataSection) -> TrainingSources:
    """Resolve where train and eval rows come from (through the paths' Hadoop file systems); fails on a missing
    path before any data is read."""
    if cfg.eval_path:
        return TrainingSources(
            resolve_source(spark, cfg.path, cfg.format, None, "data.path"),
            resolve_source(spark, cfg.eval_path, cfg.format, None, "data.eval_path"),
        )
    if has_split(spark, cfg.path, cfg.train_split):
        train = resolve_source(spark, cfg.path, cfg.format, cfg.train_split, "data.path")
        if has_split(spark, cfg.path, cfg.eval_split):
            return TrainingSources(train, resolve_source(spark, cfg.path, cfg.format, cfg.eval_split, "data.path"))
        return TrainingSources(train, None)
    return TrainingSources(resolve_source(spark, cfg.path, cfg.format, None, "data.path"), None)


def normalize_labels(frame: pd.DataFrame, column: str, labels: list[str], where: str) -> pd.Series:
    """Map a label column to class ids ``0..len(labels)-1``.

    Accepts integer ids or label names (case-insensitive). Nulls and unknown values raise a
    :class:`DataError` naming the column, the offending value and how many rows hold it.
    """
    values = frame[column]
    nulls = int(values.isna().sum())
    if nulls:
        raise DataError(f"label column '{column}' in {where} has {nulls} null value(s)")
    by_name = {name.lower(): i for i, name in enumerate(labels)}
    by_id = {i: i for i in range(len(labels))}

    def to_id(value: object) -> int | None:
        if isinstance(value, str):
            return by_name.get(value.strip().lower(), by_id.get(int(value)) if value.strip().isdigit() else None)
        if isinstance(value, bool):
            return None
        try:
            as_int = int(value)  # numpy ints and integral floats
        except (TypeError, ValueError):
            return None
        return by_id.get(as_int) if as_int == value else None

    ids = values.map(to_id)
    bad = values[ids.isna()]
    if len(bad):
        counts = bad.astype(str).value_counts()
        value, count = counts.index[0], int(counts.iloc[0])
        raise DataError(
            f"label column '{column}' in {where} has unknown value {value!r} in {count} row(s) "
            f"({len(bad)} bad rows in all); expected ids 0..{len(labels) - 1} or names {labels}"
        )
    return ids.astype("int64")


def _clean(frame: pd.DataFrame, cfg: DataSection, labels: list[str], where: str) -> pd.DataFrame:
    texts = frame[cfg.text_column]
    non_strings = texts[texts.notna() & ~texts.map(lambda v: isinstance(v, str))]
    if len(non_strings):
        raise DataError(
            f"text column '{cfg.text_column}' in {where} must hold strings, found {type(non_strings.iloc[0]).__name__}"
        )
    nulls = int(texts.isna().sum())
    if nulls:
        raise DataError(f"text column '{cfg.text_column}' in {where} has {nulls} null value(s)")
    return pd.DataFrame({"text": texts.astype(str), "label": normalize_labels(frame, cfg.label_column, labels, where)})


def _sample(frame: pd.DataFrame, seed: int, start: int, rows: int | None) -> datasets.Dataset:
    # The seed recipe's dataset.shuffle(seed=42).select(range(n)), kept bit-for-bit.
    shuffled = datasets.Dataset.from_pandas(frame, preserve_index=False).shuffle(seed=seed)
    stop = len(shuffled) if rows is None else min(len(shuffled), start + rows)
    if stop <= start:
        raise DataError(f"not enough rows: {len(shuffled)} available, {start} already held out for evaluation")
    return shuffled.select(range(start, stop))


def load_training_data(
    spark: SparkSession, cfg: DataSection, labels: list[str], plan: TrainingSources | None = None
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Read, validate and sample ``(train, eval)`` datasets with columns ``text`` and ``label`` (int id)."""
    plan = plan or plan_sources(spark, cfg)
    columns = [cfg.text_column, cfg.label_column]
    train_frame = _clean(read_pandas(spark, plan.train, columns), cfg, labels, plan.train.describe())
    if plan.eval is None:
        # One source: the first eval_rows of the shuffle are held out, training draws from the rest.
        evaluation = _sample(train_frame, cfg.seed, 0, cfg.eval_rows or max(1, len(train_frame) // 10))
        return _sample(train_frame, cfg.seed, len(evaluation), cfg.train_rows), evaluation
    eval_frame = _clean(read_pandas(spark, plan.eval, columns), cfg, labels, plan.eval.describe())
    return _sample(train_frame, cfg.seed, 0, cfg.train_rows), _sample(eval_frame, cfg.seed, 0, cfg.eval_rows)
