"""Scoring configs and Delta tables the incremental, fault and stream tests share."""

from __future__ import annotations

import shutil

from .data import EXACT, KEY_SCHEMA, NEGATIVE, POSITIVE, TINY, key_rows


def job(source, output, *overrides):
    """A scoring config: ``source`` -> ``output`` keyed on ``id``, incremental unless overridden."""
    from spark_sentiment.config import load_config
    from spark_sentiment.scoring.config import ScoreJobConfig

    return load_config(
        ScoreJobConfig,
        None,
        [
            f"input.path={source}",
            f"output.path={output}",
            "input.key_columns=[id]",
            "output.mode=incremental",
            f"model.uri={TINY}",
            EXACT,
            *overrides,
        ],
    )


def contents(spark, path):
    return spark.read.format("delta").load(str(path)).drop("scored_at")


def versions(spark, path) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, str(path)).history().count()


def change_source(spark, source) -> None:
    """Three commits: update id 2's text, delete id 3, insert id 7."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    table = DeltaTable.forPath(spark, str(source))
    table.update(F.col("id") == 2, {"text": F.lit(NEGATIVE[1])})
    table.delete(F.col("id") == 3)
    spark.createDataFrame([(7, POSITIVE[2])], KEY_SCHEMA).write.format("delta").mode("append").save(str(source))


def clean_result(spark, source, tmp_path, **kwargs):
    """What a from-scratch overwrite of the current input gives (``kwargs``: e.g. the predictor factory)."""
    from spark_sentiment.scoring.job import score_table

    summary = score_table(spark, job(source, tmp_path / "clean", "output.mode=overwrite"), **kwargs)
    assert summary.status == "succeeded"
    return contents(spark, tmp_path / "clean")


def keyed_source(spark, path):
    """The keyed input with a change data feed (``key_rows()``) at ``path``."""
    spark.createDataFrame(key_rows(), KEY_SCHEMA).write.format("delta").save(str(path))
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    return path


def prepared(spark, source, tmp_path, names):
    """An incremental output scored once, then a change to the input (2 rows to upsert, 1 to delete), one copy
    of the output per name; returns (outputs, rows before, version before, what a clean run gives). The
    keyword predictor labels: what the fault tests test is the write."""
    from spark_sentiment.scoring.job import score_table
    from stubs import KeywordPredictor

    first = tmp_path / "first"
    score_table(spark, job(source, first), factory=KeywordPredictor)
    change_source(spark, source)
    outputs = {name: tmp_path / name for name in names}
    for out in outputs.values():
        shutil.copytree(first, out)
    clean = clean_result(spark, source, tmp_path, factory=KeywordPredictor)
    return outputs, contents(spark, first).collect(), versions(spark, first), clean
