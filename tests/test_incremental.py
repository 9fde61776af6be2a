"""Incremental scoring and idempotent reruns on real Delta tables (tiny random model)."""

from __future__ import annotations

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.scoring.job import score_table
from stubs import KeywordPredictor
from support.data import KEY_SCHEMA, key_rows
from support.tables import change_source, clean_result, contents, job, versions


def test_change_data_feed_scores_only_changes_and_deletes(spark, tiny_model, cdf_source, tmp_path):
    source = cdf_source
    out = tmp_path / "out"
    first = score_table(spark, job(source, out))
    assert (first.status, first.method, first.input_version, first.rows_inserted) == (
        "succeeded",
        "initial",
        1,
        6,
    )
    scored_at = {r["id"]: r["scored_at"] for r in spark.read.format("delta").load(str(out)).collect()}

    again = score_table(spark, job(source, out))
    assert (again.status, again.rows_in) == ("up_to_date", 0)
    assert versions(spark, out) == 1

    change_source(spark, source)
    third = score_table(spark, job(source, out))
    assert third.method == "change_data_feed"
    assert (third.previous_input_version, third.input_version) == (1, 4)
    assert third.rows_in == 2  # ids 2 (changed) and 7 (new); the other rows are not scored again
    assert (third.rows_inserted, third.rows_updated, third.rows_deleted) == (1, 1, 1)
    assertDataFrameEqual(contents(spark, out), clean_result(spark, source, tmp_path))
    after = {r["id"]: r["scored_at"] for r in spark.read.format("delta").load(str(out)).collect()}
    assert all(after[i] == scored_at[i] for i in (1, 4, 5, 6))  # untouched rows keep their first scoring
    assert score_table(spark, job(source, out)).status == "up_to_date"


def test_last_run_is_found_behind_other_writers_commits(spark, tiny_model, cdf_source, tmp_path, monkeypatch):
    """The job finds its previous run in the output's history past the first page of commits it reads
    (here 2; other writers made 3 commits since), and so scores only the change (what is tested is the
    history, so the keyword predictor labels)."""
    from spark_sentiment.io import delta

    monkeypatch.setattr(delta, "HISTORY_PAGE", 2)
    out = tmp_path / "out"
    assert score_table(spark, job(cdf_source, out), factory=KeywordPredictor).status == "succeeded"
    for i in range(3):  # commits of another writer: no tag of ours
        spark.sql(f"ALTER TABLE delta.`{out}` SET TBLPROPERTIES ('other.writer' = '{i}')")
    change_source(spark, cdf_source)
    third = score_table(spark, job(cdf_source, out), factory=KeywordPredictor)
    assert (third.method, third.previous_input_version, third.rows_in) == ("change_data_feed", 1, 2)
    assertDataFrameEqual(contents(spark, out), clean_result(spark, cdf_source, tmp_path, factory=KeywordPredictor))
    assert score_table(spark, job(cdf_source, out), factory=KeywordPredictor).status == "up_to_date"


def test_key_comparison_without_feed_can_keep_deleted_rows(spark, tiny_model, tmp_path):
    source = tmp_path / "plain"
    spark.createDataFrame(key_rows(), KEY_SCHEMA).write.format("delta").save(str(source))  # no change data feed
    out = tmp_path / "out"
    score_table(spark, job(source, out, "output.deletes=keep"))
    change_source(spark, source)
    summary = score_table(spark, job(source, out, "output.deletes=keep"))
    assert (summary.method, summary.rows_in, summary.rows_deleted) == ("key_comparison", 2, 0)
    ids = sorted(r["id"] for r in spark.read.format("delta").load(str(out)).collect())
    assert ids == [1, 2, 3, 4, 5, 6, 7]  # id 3 was deleted from the input and kept in the output
    # Key comparison reconciles the whole table: once deletes=delete, every key gone from the input goes
    # (id 3, kept before, and id 4, deleted now).
    DeltaTable.forPath(spark, str(source)).delete(F.col("id") == 4)
    deleting = score_table(spark, job(source, out))
    assert (deleting.method, deleting.rows_in, deleting.rows_deleted) == ("key_comparison", 0, 2)
    assertDataFrameEqual(contents(spark, out), clean_result(spark, source, tmp_path))


def test_new_model_version_rescores_unless_told_never(spark, tiny_model, cdf_source, tmp_path):
    source = cdf_source
    out = tmp_path / "out"
    score_table(spark, job(source, out))
    other = f"runs:/{tiny_model['run_id']}/model"  # the same weights under another identity
    never = score_table(spark, job(source, out, f"model.uri={other}", "output.rescore=never"))
    assert never.status == "up_to_date"
    rescored = score_table(spark, job(source, out, f"model.uri={other}"))
    assert (rescored.method, rescored.rows_in, rescored.rows_updated) == ("key_comparison", 6, 6)
    labels = {r["sentiment_model"] for r in spark.read.format("delta").load(str(out)).collect()}
    assert labels == {other}


def test_batch_id_makes_append_reruns_no_ops(spark, tiny_model, cdf_source, tmp_path):
    source = cdf_source
    out = tmp_path / "out"
    append = ["output.mode=append"]
    first = score_table(spark, job(source, out, *append, "output.batch_id=20261126"))
    rerun = score_table(spark, job(source, out, *append, "output.batch_id=20261126"))
    assert (first.status, rerun.status, rerun.rows_in) == ("succeeded", "skipped", 0)
    assert spark.read.format("delta").load(str(out)).count() == 6 and versions(spark, out) == 1
    older = score_table(spark, job(source, out, *append, "output.batch_id=20261125"))
    assert older.status == "skipped"  # batch ids only go forward
    score_table(spark, job(source, out, *append, "output.batch_id=20261127"))
    assert spark.read.format("delta").load(str(out)).count() == 12


def test_batch_id_zero_is_a_committed_batch(spark, tiny_model, cdf_source, tmp_path):
    out = tmp_path / "out"
    first = score_table(spark, job(cdf_source, out, "output.mode=append", "output.batch_id=0"))
    rerun = score_table(spark, job(cdf_source, out, "output.mode=append", "output.batch_id=0"))
    assert (first.status, rerun.status) == ("succeeded", "skipped")
    assert spark.read.format("delta").load(str(out)).count() == 6


@pytest.mark.parametrize("mode", ["merge", "incremental"])
def test_reruns_leave_identical_tables(spark, tiny_model, cdf_source, tmp_path, mode, reruns=3):
    rerun_until_stable(spark, cdf_source, tmp_path, mode, reruns)


@pytest.mark.soak
@pytest.mark.parametrize("mode", ["merge", "incremental"])
def test_twenty_reruns_leave_identical_tables(spark, tiny_model, cdf_source, tmp_path, mode):
    """Opt-in soak (``pytest -m soak``): the same, twenty times."""
    rerun_until_stable(spark, cdf_source, tmp_path, mode, 20)


def rerun_until_stable(spark, source, tmp_path, mode: str, reruns: int) -> None:
    out = tmp_path / "out"
    score_table(spark, job(source, out, f"output.mode={mode}"))
    expected = contents(spark, out).collect()
    statuses = set()
    for _ in range(reruns):
        statuses.add(score_table(spark, job(source, out, f"output.mode={mode}")).status)
        assertDataFrameEqual(contents(spark, out), expected)
    assert statuses == ({"succeeded"} if mode == "merge" else {"up_to_date"})
