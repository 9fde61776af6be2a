"""Readers of labeled reviews on small data written by the tests: Delta, Parquet, aclImdb, tables."""

from __future__ import annotations

import pandas as pd
import pytest
from spark_sentiment.config import load_config
from spark_sentiment.core.errors import DataError
from spark_sentiment.io.tables import resolve_source
from spark_sentiment.training.config import TrainJobConfig
from spark_sentiment.training.data import load_training_data, normalize_labels, plan_sources
from support.data import labeled_rows

LABELS = ["NEGATIVE", "POSITIVE"]
SCHEMA = "review_id string, text string, label int"


def data_cfg(path, *overrides):
    return load_config(TrainJobConfig, None, [f"data.path={path}", *overrides]).data


def split(data):
    return data.train, data.eval


def write_acl(folder, rows):
    for review_id, text, label in rows:
        sub = folder / ("pos" if label else "neg")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{review_id}_{8 if label else 2}.txt").write_text(text)


def test_split_folder_of_parquet_files(spark, tmp_path):
    spark.createDataFrame(labeled_rows(40), SCHEMA).toPandas().to_parquet(tmp_path / "train.parquet")
    spark.createDataFrame(labeled_rows(10), SCHEMA).toPandas().to_parquet(tmp_path / "test.parquet")
    (plan,) = plan_sources(spark, data_cfg(tmp_path))
    assert (plan.train.format, plan.eval.format) == ("parquet", "parquet")
    train, evaluation = split(
        load_training_data(spark, data_cfg(tmp_path, "data.train_rows=30", "data.eval_rows=5"), LABELS)
    )
    assert (len(train), len(evaluation)) == (30, 5)
    assert set(train.column_names) == {"text", "label"}
    assert set(train["label"]) == {0, 1}


def test_single_delta_table_holds_out_eval_rows_without_overlap(spark, tmp_path):
    rows = [(f"r{i}", f"review number {i}", i % 2) for i in range(50)]
    spark.createDataFrame(rows, SCHEMA).write.format("delta").save(str(tmp_path / "reviews"))
    cfg = data_cfg(tmp_path / "reviews", "data.train_rows=40", "data.eval_rows=10")
    assert plan_sources(spark, cfg)[0].eval is None
    train, evaluation = split(load_training_data(spark, cfg, LABELS))
    assert len(train) == 40 and len(evaluation) == 10
    assert not set(train["text"]) & set(evaluation["text"])


def test_seeded_selection_is_reproducible(spark, tmp_path):
    rows = [(f"r{i}", f"review number {i}", i % 2) for i in range(100)]
    spark.createDataFrame(rows, SCHEMA).write.format("delta").save(str(tmp_path / "reviews"))
    cfg = data_cfg(tmp_path / "reviews", "data.train_rows=20", "data.eval_rows=10")
    first = load_training_data(spark, cfg, LABELS).train
    second = load_training_data(spark, cfg, LABELS).train
    other = load_training_data(
        spark, data_cfg(tmp_path / "reviews", "data.train_rows=20", "data.eval_rows=10", "data.seed=7"), LABELS
    ).train
    assert first["text"] == second["text"]
    assert first["text"] != other["text"]


def test_aclimdb_layout_with_train_and_test(spark, tmp_path):
    write_acl(tmp_path / "aclImdb" / "train", labeled_rows(12))
    write_acl(tmp_path / "aclImdb" / "test", labeled_rows(6))
    cfg = data_cfg(tmp_path / "aclImdb", "data.train_rows=null", "data.eval_rows=null")
    (plan,) = plan_sources(spark, cfg)
    assert (plan.train.format, plan.eval.format) == ("aclimdb", "aclimdb")
    train, evaluation = split(load_training_data(spark, cfg, LABELS))
    assert (len(train), len(evaluation)) == (12, 6)
    assert sorted(train["label"]) == [0] * 6 + [1] * 6


def test_catalog_table_and_string_labels(spark):
    rows = [(f"r{i}", f"text {i}", ["negative", "POSITIVE"][i % 2]) for i in range(20)]
    spark.createDataFrame(rows, "review_id string, review string, sentiment string").write.format("delta").mode(
        "overwrite"
    ).saveAsTable("labeled_reviews")
    cfg = data_cfg("labeled_reviews", "data.text_column=review", "data.label_column=sentiment", "data.eval_rows=4")
    assert plan_sources(spark, cfg)[0].train.format == "table"
    train, evaluation = split(load_training_data(spark, cfg, LABELS))
    assert len(train) + len(evaluation) == 20
    assert set(train["label"]) == {0, 1}


@pytest.mark.parametrize(
    "values, message",
    [
        ([0, 1, 7, 7], "label column 'label' in test has unknown value '7' in 2 row(s)"),
        ([0, None, 1, None], "label column 'label' in test has 2 null value(s)"),
        (["pos", "neg", "POSITIVE", "NEGATIVE"], "has unknown value "),
        ([0.0, 1.0, 0.5, 1.0], "unknown value '0.5' in 1 row(s)"),
    ],
)
def test_bad_labels_name_column_value_and_count(values, message):
    with pytest.raises(DataError) as info:
        normalize_labels(pd.DataFrame({"label": values}), "label", LABELS, "test")
    assert message in str(info.value)


def test_label_names_and_ids_both_map():
    ids = normalize_labels(pd.DataFrame({"label": ["negative", "POSITIVE", "1", 0]}), "label", LABELS, "t")
    assert ids.tolist() == [0, 1, 1, 0]


def test_missing_path_and_missing_column(spark, tmp_path):
    with pytest.raises(DataError, match="data.path: /no/such/dir does not exist"):
        plan_sources(spark, data_cfg("/no/such/dir"))
    spark.createDataFrame(labeled_rows(8), SCHEMA).write.format("delta").save(str(tmp_path / "t"))
    with pytest.raises(DataError, match=r"column 'body' not found in delta:.* \(columns: review_id, text, label\)"):
        load_training_data(spark, data_cfg(tmp_path / "t", "data.text_column=body"), LABELS)


def test_folder_without_a_table_is_refused(spark, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="holds no Delta table, Parquet files, pos/neg folders"):
        resolve_source(spark, str(tmp_path))


def test_ingest_lands_an_aclimdb_folder_in_delta(spark, tmp_path):
    from spark_sentiment.io.ingest import ingest
    from spark_sentiment.io.tables import TableRef

    write_acl(tmp_path / "acl" / "unsup_like", labeled_rows(10))
    rows = ingest(spark, str(tmp_path / "acl" / "unsup_like"), TableRef.of(path=str(tmp_path / "out")), limit=7)
    assert rows == 7
    landed = spark.read.format("delta").load(str(tmp_path / "out"))
    assert landed.columns == ["review_id", "text", "label"]


THREE = ["NEGATIVE", "NEUTRAL", "POSITIVE"]
GRADES = "{1: NEGATIVE, 2: NEGATIVE, 3: NEUTRAL, 4: POSITIVE, 5: POSITIVE}"


def two_sources(tmp_path, spark, grades=GRADES):
    """A binary source (ids 0/1) and a graded one (1-5), as Parquet, and the config that trains on both."""
    spark.createDataFrame(labeled_rows(40), SCHEMA).toPandas().to_parquet(tmp_path / "reviews.parquet")
    graded = pd.DataFrame({"sentence": [f"sentence {i}" for i in range(50)], "grade": [1 + i % 5 for i in range(50)]})
    graded.to_parquet(tmp_path / "graded.parquet")
    sources = (
        f"[{{name: reviews, path: {tmp_path / 'reviews.parquet'}, label_map: {{0: NEGATIVE, 1: POSITIVE}}, "
        f"train_rows: 30, eval_rows: 6}}, {{name: sentences, path: {tmp_path / 'graded.parquet'}, "
        f"text_column: sentence, label_column: grade, label_map: {grades}, train_rows: null, eval_rows: 10}}]"
    )
    return load_config(TrainJobConfig, None, [f"data.sources={sources}", f"model.labels={THREE}"])


def test_several_sources_with_their_own_columns_and_label_maps(spark, tmp_path):
    cfg = two_sources(tmp_path, spark)
    plan = plan_sources(spark, cfg.data)
    assert [(p.name, p.key, p.eval) for p in plan] == [
        ("reviews", "data.sources[0].", None),
        ("sentences", "data.sources[1].", None),
    ]
    data = load_training_data(spark, cfg.data, THREE)
    assert (len(data.train), len(data.eval)) == (30 + 40, 6 + 10)
    assert data.eval_sources == ("reviews",) * 6 + ("sentences",) * 10
    texts = list(data.train["text"])
    # shuffled together: the sources' rows are interleaved, not one block after the other
    assert {t.startswith("sentence") for t in texts[:20]} == {True, False}
    labels = dict(zip(data.train["text"], data.train["label"]))
    graded = {f"sentence {i}": 1 + i % 5 for i in range(50)}
    for text, grade in graded.items():
        if text in labels:
            assert labels[text] == {1: 0, 2: 0, 3: 1, 4: 2, 5: 2}[grade]
    assert set(data.train["label"]) == {0, 1, 2}
    again = load_training_data(spark, cfg.data, THREE)
    assert list(again.train["text"]) == texts


def test_a_held_out_slice_chosen_by_where_is_never_trained_on(spark, tmp_path):
    graded = pd.DataFrame(
        {"sentence": [f"sentence {i}" for i in range(50)], "grade": [1 + i % 5 for i in range(50)], "id": range(50)}
    )
    graded.to_parquet(tmp_path / "graded.parquet")
    common = f"path: {tmp_path / 'graded.parquet'}, text_column: sentence, label_column: grade, label_map: {GRADES}"
    sources = (
        f"[{{name: train, {common}, where: 'id % 5 != 0', train_rows: null, eval_rows: 0}}, "
        f"{{name: held_out, {common}, where: 'id % 5 = 0', train_rows: 0, eval_rows: null}}]"
    )
    cfg = load_config(TrainJobConfig, None, [f"data.sources={sources}", f"model.labels={THREE}"])
    data = load_training_data(spark, cfg.data, THREE)
    assert sorted(data.eval["text"]) == sorted(f"sentence {i}" for i in range(0, 50, 5))
    assert data.eval_sources == ("held_out",) * 10
    assert sorted(data.train["text"]) == sorted(f"sentence {i}" for i in range(50) if i % 5)


def test_a_grade_outside_the_map_names_source_column_value_and_count(spark, tmp_path):
    cfg = two_sources(tmp_path, spark, "{1: NEGATIVE, 2: NEGATIVE, 3: NEUTRAL}")
    with pytest.raises(DataError) as info:
        load_training_data(spark, cfg.data, THREE)
    message = str(info.value)
    assert "source 'sentences'" in message and "label column 'grade'" in message
    assert "value '4' in 10 row(s) that label_map does not map (20 such rows in all)" in message


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.sources=[{path: ''}]", "config key 'data.sources[0].path' must not be empty"),
        ("data.sources=[{path: a, eval_rows: -1}]", "'data.sources[0].eval_rows' must be an integer >= 0"),
        ("data.sources=[{path: a, name: x}, {path: b, name: x}]", "'data.sources' names must differ"),
        ("data.sources=[{path: a, label_map: {1: GOOD}}]", "'data.sources[0].label_map' maps to ['GOOD'], which"),
        ("data.sources=[{path: a, colour: red}]", "unknown config key 'data.sources[0].colour'"),
        ("data.sources=[{path: a, train_rows: 0}]", "'data.sources' every source has train_rows 0"),
    ],
)
def test_bad_sources_config_names_the_key(override, message):
    from spark_sentiment.core.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(TrainJobConfig, None, [override])
    assert message in str(info.value)


def test_a_source_condition_keeps_only_its_rows_and_a_bad_one_names_the_key(spark, tmp_path):
    rows = pd.DataFrame({"text": [f"phrase {i}" for i in range(30)], "grade": [1 + i % 5 for i in range(30)]})
    rows["tokens"] = [i % 10 for i in range(30)]
    rows.to_parquet(tmp_path / "phrases.parquet")
    base = f"{{name: phrases, path: {tmp_path / 'phrases.parquet'}, label_column: grade, label_map: {GRADES}, "
    kept = load_config(
        TrainJobConfig,
        None,
        [f"data.sources=[{base}where: 'tokens >= 5', train_rows: null, eval_rows: 0}}]", f"model.labels={THREE}"],
    )
    data = load_training_data(spark, kept.data, THREE)
    assert len(data.train) == 15 and len(data.eval) == 0
    bad = load_config(TrainJobConfig, None, [f"data.sources=[{base}where: 'colour = 1'}}]", f"model.labels={THREE}"])
    with pytest.raises(DataError, match=r"data.sources\[0\].where: condition 'colour = 1' cannot be applied to"):
        load_training_data(spark, bad.data, THREE)
