"""Tables as lakehouses make them: an input with column mapping (names with spaces and parentheses),
deletion vectors, Change Data Feed, liquid clustering, a generated and an identity column is read, scored
and written in every mode; the output gets column mapping because its names need it; what the job cannot
honour (an append-only output, a table feature this Delta Lake cannot write or read, such names in a table
without column mapping) fails before any row is scored, with one line, and the tables stay as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.config import load_config
from spark_sentiment.core.errors import DataError
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import main, score_table
from stubs import POSITIVE_WORDS, KeywordPredictor, MarkingFactory
from support.commands import call_main
from support.data import TINY
from support.tables import versions

KEY, TEXT = "review id", "review text"
SETS = [f"input.key_columns=[{KEY}]", f"input.text_columns=[{TEXT}]", f"model.uri={TINY}"]


def config(source, output, mode: str):
    return load_config(
        ScoreJobConfig, None, [f"input.path={source}", f"output.path={output}", f"output.mode={mode}", *SETS]
    )


def expected(spark, source):
    """The input's rows plus the keyword predictor's labels (what a clean run writes, less ``scored_at``)."""
    text = F.lower(F.col(f"`{TEXT}`"))
    positive = F.lit(False)
    for word in POSITIVE_WORDS:
        positive = positive | text.contains(word)
    return (
        spark.read.format("delta")
        .load(str(source))
        .select(
            "*",
            F.when(positive, "POSITIVE").otherwise("NEGATIVE").alias(f"{TEXT}_sentiment"),
            F.lit(0.9).cast("float").alias(f"{TEXT}_sentiment_score"),
            F.lit(None).cast("map<string,float>").alias(f"{TEXT}_sentiment_probabilities"),  # keyword predictor: none
            F.lit("TinySentiment/1").alias("sentiment_model"),
        )
    )


def scored(spark, output):
    return spark.read.format("delta").load(str(output)).drop("scored_at")


def properties(spark, path) -> dict[str, str]:
    return DeltaTable.forPath(spark, str(path)).detail().first()["properties"]


@pytest.fixture()
def lakehouse_table(spark, tmp_path) -> Path:
    path = tmp_path / "reviews"
    spark.sql(f"""
        CREATE TABLE delta.`{path}` (
          `{KEY}` BIGINT GENERATED ALWAYS AS IDENTITY,
          `{TEXT}` STRING,
          `stars (1-10)` INT,
          `posted on` DATE,
          `posted year` INT GENERATED ALWAYS AS (YEAR(`posted on`))
        ) USING delta CLUSTER BY (`{KEY}`)
        TBLPROPERTIES ('delta.columnMapping.mode' = 'name', 'delta.enableDeletionVectors' = 'true',
                       'delta.enableChangeDataFeed' = 'true')""")
    spark.sql(f"""
        INSERT INTO delta.`{path}` (`{TEXT}`, `stars (1-10)`, `posted on`) VALUES
          ('I love it', 9, DATE'2024-01-02'), ('awful', 1, DATE'2023-05-06'),
          ('great film', 8, DATE'2022-03-04'), ('boring', 3, DATE'2021-01-01')""")
    features = set(DeltaTable.forPath(spark, str(path)).detail().first()["tableFeatures"])
    assert {"columnMapping", "deletionVectors", "changeDataFeed", "clustering", "generatedColumns"} <= features
    assert "identityColumns" in features
    return path


def change(spark, path) -> None:
    """A delete (written as a deletion vector), an update and an insert: three input commits."""
    spark.sql(f"DELETE FROM delta.`{path}` WHERE `stars (1-10)` = 3")
    spark.sql(f"UPDATE delta.`{path}` SET `{TEXT}` = 'wonderful' WHERE `stars (1-10)` = 1")
    spark.sql(f"INSERT INTO delta.`{path}` (`{TEXT}`, `stars (1-10)`, `posted on`) VALUES ('meh', 5, DATE'2020-01-01')")


def test_lakehouse_input_is_scored_in_every_mode(spark, tiny_model, lakehouse_table, tmp_path):
    source = lakehouse_table
    outputs = {mode: tmp_path / mode for mode in ("overwrite", "append", "merge", "incremental")}
    for mode, out in outputs.items():
        summary = score_table(spark, config(source, out, mode), factory=KeywordPredictor)
        assert (summary.status, summary.rows_in) == ("succeeded", 4), mode
        assertDataFrameEqual(scored(spark, out), expected(spark, source))
        assert properties(spark, out)["delta.columnMapping.mode"] == "name"  # its names need it

    change(spark, source)
    deletion_vectors = spark.sql(f"DESCRIBE HISTORY delta.`{source}`").where("operation = 'DELETE'").first()
    assert int(deletion_vectors["operationMetrics"]["numDeletionVectorsAdded"]) == 1
    merged = score_table(spark, config(source, outputs["merge"], "merge"), factory=KeywordPredictor)
    incremental = score_table(spark, config(source, outputs["incremental"], "incremental"), factory=KeywordPredictor)
    assert (incremental.method, incremental.rows_in, incremental.rows_deleted) == ("change_data_feed", 2, 1)
    assert merged.rows_in == 4
    assertDataFrameEqual(scored(spark, outputs["incremental"]), expected(spark, source))
    # merge upserts and never deletes: the deleted review stays, the others are as the input is now
    gone = F.col(f"`{KEY}`").isin([r[0] for r in deleted_keys(spark, source)])
    kept = scored(spark, outputs["merge"]).where(gone)
    # rows whose key is gone from the input, by key: set operations (subtract) take no map columns
    assertDataFrameEqual(scored(spark, outputs["merge"]).where(~gone), expected(spark, source))
    assert kept.count() == 1


def deleted_keys(spark, source):
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", 0)
        .load(str(source))
        .where("_change_type = 'delete'")
        .select(f"`{KEY}`")
        .collect()
    )


def refused(spark, source, output, mode: str, marker: Path, match: str) -> None:
    before = versions(spark, output) if (output / "_delta_log").exists() else None
    with pytest.raises(DataError, match=match):
        score_table(spark, config(source, output, mode), factory=MarkingFactory(str(marker)))
    assert not marker.exists(), "rows were scored before the refusal"
    assert (versions(spark, output) if before is not None else None) == before


def test_what_the_output_cannot_take_is_refused_before_scoring(spark, tiny_model, lakehouse_table, tmp_path):
    source, marker = lakehouse_table, tmp_path / "scored"
    append_only = tmp_path / "append-only"
    spark.sql(f"CREATE TABLE delta.`{append_only}` (x INT) USING delta TBLPROPERTIES ('delta.appendOnly' = 'true')")
    refused(spark, source, append_only, "merge", marker, r"append-only \(delta.appendOnly=true\) but output.mode=merge")

    no_mapping = tmp_path / "no-mapping"
    spark.createDataFrame([(1, "x")], "id bigint, text string").write.format("delta").save(str(no_mapping))
    refused(spark, source, no_mapping, "append", marker, r"no column mapping but column 'review id'")

    newer = tmp_path / "newer-runtime"
    spark.createDataFrame([(1, "x")], "id bigint, text string").write.format("delta").save(str(newer))
    upgrade_protocol(newer, writer=["futureWriterFeature"])
    refused(spark, source, newer, "overwrite", marker, r"requires Delta table feature\(s\) futureWriterFeature")

    # The same through the entry point: one error line, exit 2.
    argv = sum((["--set", s] for s in [f"input.path={source}", f"output.path={append_only}", *SETS]), [])
    code, out, err = call_main(main, argv + ["--set", "output.mode=incremental"], factory=MarkingFactory(str(marker)))
    assert (code, out) == (2, "") and err.count("\n") == 1 and err.startswith("error: output delta:"), err
    assert not marker.exists()


def test_an_input_this_delta_lake_cannot_read_is_refused_in_one_line(spark, tiny_model, tmp_path):
    source = tmp_path / "from-the-future"
    spark.createDataFrame([(1, "fine")], "id bigint, text string").write.format("delta").save(str(source))
    upgrade_protocol(source, reader=["futureReaderFeature"])
    marker = tmp_path / "scored"
    sets = [f"input.path={source}", f"output.path={tmp_path / 'out'}", "input.key_columns=[id]", f"model.uri={TINY}"]
    with pytest.raises(DataError, match=r"^input delta:.*unsupported.*futureReaderFeature") as error:
        score_table(spark, load_config(ScoreJobConfig, None, sets), factory=MarkingFactory(str(marker)))
    assert "\n" not in str(error.value) and not marker.exists() and not (tmp_path / "out").exists()


def upgrade_protocol(path: Path, reader: list[str] = (), writer: list[str] = ()) -> None:
    """Commit a protocol that needs table features unknown here, as a table upgraded by a newer runtime has."""
    log = path / "_delta_log"
    version = max(int(p.stem) for p in log.glob("*.json")) + 1
    protocol = {
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": ["deletionVectors", *reader],
        "writerFeatures": ["deletionVectors", *reader, *writer],
    }
    actions = [{"commitInfo": {"timestamp": 0, "operation": "UPGRADE PROTOCOL"}}, {"protocol": protocol}]
    (log / f"{version:020d}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))
