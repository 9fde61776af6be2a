"""Labeled training data: resolve train/eval sources, validate labels, draw the seeded samples."""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import pandas as pd
from pyspark.sql import SparkSession

from ..core.errors import DataError
from ..io.tables import TableRef, has_split, read_pandas, resolve_source
from .config import DataSection, SourceSection, value_key


@dataclass(frozen=True)
class TrainingSources:
    """Where one source's train and eval rows come from."""

    name: str
    section: SourceSection
    key: str  # config key prefix of the source (data. or data.sources[i].), for messages
    train: TableRef
    eval: TableRef | None  # None: hold out eval rows from the shuffled train source


@dataclass(frozen=True)
class TrainingData:
    """The sampled rows: ``train`` and ``eval`` datasets (``text``, ``label`` id) and the source of each eval
    row, in order (for per-source metrics)."""

    train: datasets.Dataset
    eval: datasets.Dataset
    eval_sources: tuple[str, ...]


def plan_source(spark: SparkSession, name: str, cfg: SourceSection, key: str) -> TrainingSources:
    """Resolve one source (through the paths' Hadoop file systems); fails on a missing path before any data
    is read."""
    path_key = f"{key}path"
    if cfg.eval_path:
        return TrainingSources(
            name,
            cfg,
            key,
            resolve_source(spark, cfg.path, cfg.format, None, path_key),
            resolve_source(spark, cfg.eval_path, cfg.format, None, f"{key}eval_path"),
        )
    if has_split(spark, cfg.path, cfg.train_split):
        train = resolve_source(spark, cfg.path, cfg.format, cfg.train_split, path_key)
        evaluation = None
        if has_split(spark, cfg.path, cfg.eval_split):
            evaluation = resolve_source(spark, cfg.path, cfg.format, cfg.eval_split, path_key)
        return TrainingSources(name, cfg, key, train, evaluation)
    return TrainingSources(name, cfg, key, resolve_source(spark, cfg.path, cfg.format, None, path_key), None)


def plan_sources(spark: SparkSession, cfg: DataSection) -> list[TrainingSources]:
    """Every source of ``cfg`` resolved (``data.sources``, else the one ``data.*`` source)."""
    return [plan_source(spark, name, source, key) for name, source, key in cfg.each()]


def normalize_labels(
    frame: pd.DataFrame, column: str, labels: list[str], where: str, mapping: dict[str, str] | None = None
) -> pd.Series:
    """Map a label column to class ids ``0..len(labels)-1``.

    Without ``mapping``: integer ids or label names (case-insensitive). With one (value text -> label name,
    :meth:`SourceSection.mapping`): each value through it. Nulls and unknown values raise a
    :class:`DataError` naming the column, the offending value and how many rows hold it.
    """
    values = frame[column]
    nulls = int(values.isna().sum())
    if nulls:
        raise DataError(f"label column '{column}' in {where} has {nulls} null value(s)")
    if mapping:
        return _mapped(values, column, labels, where, mapping)
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


def _mapped(values: pd.Series, column: str, labels: list[str], where: str, mapping: dict[str, str]) -> pd.Series:
    ids = {name: i for i, name in enumerate(labels)}
    keys = values.map(value_key)
    bad = values[~keys.isin(list(mapping))]
    if len(bad):
        counts = keys[bad.index].value_counts()
        value, count = counts.index[0], int(counts.iloc[0])
        raise DataError(
            f"label column '{column}' in {where} has value {value!r} in {count} row(s) that label_map does not map "
            f"({len(bad)} such rows in all); label_map maps {sorted(mapping)}"
        )
    return keys.map(lambda key: ids[mapping[key]]).astype("int64")


def _clean(frame: pd.DataFrame, cfg: SourceSection, labels: list[str], where: str) -> pd.DataFrame:
    texts = frame[cfg.text_column]
    non_strings = texts[texts.notna() & ~texts.map(lambda v: isinstance(v, str))]
    if len(non_strings):
        raise DataError(
            f"text column '{cfg.text_column}' in {where} must hold strings, found {type(non_strings.iloc[0]).__name__}"
        )
    nulls = int(texts.isna().sum())
    if nulls:
        raise DataError(f"text column '{cfg.text_column}' in {where} has {nulls} null value(s)")
    ids = normalize_labels(frame, cfg.label_column, labels, where, cfg.mapping())
    return pd.DataFrame({"text": texts.astype(str), "label": ids})


def _sample(frame: pd.DataFrame, seed: int, start: int, rows: int | None) -> datasets.Dataset:
    # The seed recipe's dataset.shuffle(seed=42).select(range(n)), kept bit-for-bit.
    shuffled = datasets.Dataset.from_pandas(frame, preserve_index=False).shuffle(seed=seed)
    if rows == 0:
        return shuffled.select([])
    stop = len(shuffled) if rows is None else min(len(shuffled), start + rows)
    if stop <= start:
        raise DataError(f"not enough rows: {len(shuffled)} available, {start} already held out for evaluation")
    return shuffled.select(range(start, stop))


def _load_source(
    spark: SparkSession, plan: TrainingSources, labels: list[str], seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    cfg = plan.section
    columns = [cfg.text_column, cfg.label_column]

    def named(ref: TableRef) -> str:
        return ref.describe() if plan.key == "data." else f"source '{plan.name}' ({ref.describe()})"

    where = f"{plan.key}where"
    train_frame = _clean(read_pandas(spark, plan.train, columns, cfg.where, where), cfg, labels, named(plan.train))
    if plan.eval is None:
        # One split: the first eval_rows of the shuffle are held out, training draws from the rest.
        held_out = cfg.eval_rows
        if held_out is None:
            held_out = len(train_frame) if cfg.train_rows == 0 else max(1, len(train_frame) // 10)
        evaluation = _sample(train_frame, seed, 0, held_out)
        return _sample(train_frame, seed, len(evaluation), cfg.train_rows), evaluation
    eval_frame = _clean(read_pandas(spark, plan.eval, columns, cfg.where, where), cfg, labels, named(plan.eval))
    return _sample(train_frame, seed, 0, cfg.train_rows), _sample(eval_frame, seed, 0, cfg.eval_rows)


def load_training_data(
    spark: SparkSession, cfg: DataSection, labels: list[str], plan: list[TrainingSources] | None = None
) -> TrainingData:
    """Read, validate and sample every source; ``train`` and ``eval`` hold columns ``text`` and ``label``
    (int id). One source's rows keep the seeded order of the seed recipe; several sources' training rows are
    shuffled together (seeded), so every batch mixes them."""
    plan = plan if plan is not None else plan_sources(spark, cfg)
    parts = [(source.name, *_load_source(spark, source, labels, cfg.seed)) for source in plan]
    if len(parts) == 1:
        name, train, evaluation = parts[0]
        return TrainingData(train, evaluation, (name,) * len(evaluation))
    train = datasets.concatenate_datasets([train for _, train, _ in parts]).shuffle(seed=cfg.seed)
    evaluation = datasets.concatenate_datasets([evaluation for _, _, evaluation in parts])
    eval_sources = tuple(name for name, _, part in parts for _ in range(len(part)))
    return TrainingData(train.flatten_indices(), evaluation, eval_sources)
