"""A three-class model trained from two sources, per-class probabilities, sentence granularity, and outputs
written at one granularity or schema then written again (real Spark, Delta, MLflow; tiny random models)."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from spark_sentiment.config import load_config
from spark_sentiment.core.errors import DataError
from spark_sentiment.inference.sentences import sentence_spans
from spark_sentiment.model.window import Temperature
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import main as score_main
from spark_sentiment.scoring.job import score_table
from support.commands import call_main
from support.data import EXACT, labeled_rows

THREE = "TinyThree"
LABELS = ["NEGATIVE", "NEUTRAL", "POSITIVE"]
GRADES = "{1: NEGATIVE, 2: NEGATIVE, 3: NEUTRAL, 4: POSITIVE, 5: POSITIVE}"
SENTENCES = [
    "A dull, lifeless film.",
    "The acting is poor.",
    "It opens in Paris in 1950.",
    "A warm and funny story.",
    "Simply a masterpiece!",
]
LONG = " ".join(f"Sentence number {i} of a very long review goes on." for i in range(80))  # ~900 tokens
TEXTS = [
    (1, "I loved the cast. The plot was awful.<br /><br />See it anyway."),
    (2, "Great film."),
    (3, None),
    (4, "   "),
    (5, LONG),
]


@pytest.fixture(scope="session")
def three_class_model(spark, project_dir, tmp_path_factory) -> dict:
    """A tiny random BERT trained through the training job's entry function on two sources at once: reviews
    with ids 0/1 (Parquet) and sentences graded 1-5 (Delta)."""
    from spark_sentiment.training.job import main

    folder = tmp_path_factory.mktemp("three_class")
    reviews = pd.DataFrame(labeled_rows(48), columns=["review_id", "text", "label"])
    reviews.to_parquet(folder / "reviews.parquet")
    graded = [(f"s{i}", SENTENCES[i % 5], i % 5 + 1) for i in range(60)]
    spark.createDataFrame(graded, "id string, sentence string, grade int").write.format("delta").save(
        str(folder / "graded")
    )
    sources = (
        f"[{{name: reviews, path: {folder / 'reviews.parquet'}, label_map: {{0: NEGATIVE, 1: POSITIVE}}, "
        f"train_rows: 36, eval_rows: 12}}, {{name: graded, path: {folder / 'graded'}, text_column: sentence, "
        f"label_column: grade, label_map: {GRADES}, train_rows: null, eval_rows: 20}}]"
    )
    args = [f"data.sources={sources}", f"model.labels=[{', '.join(LABELS)}]", "model.base=tiny-random"]
    args += ["train.max_steps=6", "train.batch_size=8", "train.max_length=64", f"registry.name={THREE}"]
    code, out, err = call_main(main, [x for arg in args for x in ("--set", arg)])
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_training_from_two_sources_records_calibration_and_the_sentence_rule(three_class_model):
    summary = three_class_model
    assert summary["labels"] == LABELS
    assert summary["train_rows"] == 36 + 40 and summary["eval_rows"] == 12 + 20
    calibration = summary["calibration"]
    assert calibration["temperature"] > 0 and calibration["rows"] == 32
    assert set(calibration["accuracy_per_source"]) == {"reviews", "graded"}
    rule = summary["sentence_aggregation"]
    assert {"clear", "mixed", "polar"} <= set(rule) and rule["fitted"]["polar_rows"] > 0
    # recorded with the model: in config.json, where every engine reads it
    path = mlflow.artifacts.download_artifacts(f"models:/{THREE}/{summary['model_version']}")
    config = json.loads(open(f"{path}/model/config.json").read())
    assert config["spark_sentiment_temperature"] == pytest.approx(calibration["temperature"], rel=1e-3)
    recorded = Temperature.of_config(config).to_dict()
    assert recorded == pytest.approx(calibration["temperature_by_length"], rel=1e-3, abs=1e-3)
    assert config["spark_sentiment_sentence_aggregation"]["clear"] == rule["clear"]


@pytest.fixture()
def texts(spark, tmp_path):
    path = str(tmp_path / "texts")
    spark.createDataFrame(TEXTS, "id int, text string").write.format("delta").save(path)
    return path


def job(source, output, *overrides):
    args = [
        f"input.path={source}",
        f"output.path={output}",
        "input.key_columns=[id]",
        f"model.uri=models:/{THREE}@champion",
    ]
    return load_config(ScoreJobConfig, None, [*args, EXACT, *overrides])


def test_every_label_has_a_probability_from_both_engines_and_pyfunc(spark, three_class_model, texts, tmp_path):
    native = score_table(spark, job(texts, tmp_path / "native", "output.mode=overwrite"))
    served = score_table(spark, job(texts, tmp_path / "mlflow", "output.mode=overwrite", "engine=mlflow"))
    assert native.status == served.status == "succeeded"
    rows = {}
    for name in ("native", "mlflow"):
        for r in spark.read.format("delta").load(str(tmp_path / name)).collect():
            rows.setdefault(r["id"], {})[name] = r
    for key, pair in rows.items():
        a, b = pair["native"], pair["mlflow"]
        if key in (3, 4):
            assert a["text_sentiment_probabilities"] is None and b["text_sentiment_probabilities"] is None
            continue
        p = a["text_sentiment_probabilities"]
        assert set(p) == set(LABELS) and sum(p.values()) == pytest.approx(1, abs=1e-5)
        assert a["text_sentiment"] == max(p, key=p.get) and p[a["text_sentiment"]] == a["text_sentiment_score"]
        assert a["text_sentiment"] == b["text_sentiment"]
        assert max(abs(p[k] - b["text_sentiment_probabilities"][k]) for k in LABELS) < 1e-4
    # mlflow.pyfunc (and so `mlflow models serve`) returns the same calibrated probabilities
    model = mlflow.pyfunc.load_model(f"models:/{THREE}@champion")
    served_rows = model.predict(pd.DataFrame({"text": ["Great film."]}))
    probabilities = served_rows["probabilities"].iloc[0]
    assert set(probabilities) == set(LABELS) and sum(probabilities.values()) == pytest.approx(1, abs=1e-5)
    native_p = rows[2]["native"]["text_sentiment_probabilities"]
    assert max(abs(probabilities[k] - native_p[k]) for k in LABELS) < 1e-4


def test_sentence_granularity_scores_every_sentence_of_the_whole_review(spark, three_class_model, texts, tmp_path):
    out = tmp_path / "sentences"
    summary = score_table(spark, job(texts, out, "output.mode=merge", "score.granularity=sentence"))
    assert summary.status == "succeeded" and summary.rows_scored == 3
    table = spark.read.format("delta").load(str(out))
    assert table.schema["text_sentences"].dataType.simpleString() == (
        "array<struct<start:int,end:int,label:string,score:double>>"
    )
    assert table.schema["text_sentiment_evidence"].dataType.simpleString() == (
        "struct<start:int,end:int,label:string,score:double>"
    )
    rows = {r["id"]: r for r in table.collect()}
    for key, text in TEXTS:
        row = rows[key]
        if key in (3, 4):
            assert row["text_sentiment"] is None and row["text_sentences"] is None
            assert row["text_sentiment_evidence"] is None
            continue
        spans = [(s["start"], s["end"]) for s in row["text_sentences"]]
        assert spans == sentence_spans(text)  # every sentence, the >512-token review included
        assert row["text_sentiment"] in LABELS + ["MIXED"]
        assert row["text_sentiment_evidence"] in row["text_sentences"]
        assert sum(row["text_sentiment_probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert all(s["label"] in LABELS and 0 < s["score"] <= 1 for s in row["text_sentences"])
    assert len(rows[5]["text_sentences"]) == 80
    # SQL: explode + substring gives each sentence's text
    found = spark.sql(
        f"SELECT id, substring(text, s.start + 1, s.`end` - s.start) AS sentence FROM delta.`{out}` "
        "LATERAL VIEW explode(text_sentences) AS s WHERE id = 1"
    ).collect()
    assert [r["sentence"] for r in found] == ["I loved the cast.", "The plot was awful.", "See it anyway."]


def test_a_binary_model_at_sentence_granularity_never_says_neutral(spark, tiny_model, texts, tmp_path):
    cfg = job(texts, tmp_path / "out", "output.mode=overwrite", "score.granularity=sentence")
    cfg.model.uri = "models:/TinySentiment@champion"
    summary = score_table(spark, cfg)
    assert set(summary.label_counts["text"]) <= {"POSITIVE", "NEGATIVE", "MIXED"}
    assert summary.rows_scored == 3


def test_engine_mlflow_at_sentence_granularity_is_one_error_line(three_class_model, texts, tmp_path):
    args = [
        "--set",
        f"input.path={texts}",
        "--set",
        f"output.path={tmp_path / 'out'}",
        "--set",
        "input.key_columns=[id]",
    ]
    args += ["--set", f"model.uri=models:/{THREE}@champion", "--set", "engine=mlflow"]
    code, _, err = call_main(score_main, [*args, "--set", "score.granularity=sentence"])
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: score.granularity sentence needs engine native")
    assert not (tmp_path / "out").exists()


def test_an_output_scored_before_probabilities_existed_gets_the_column_or_is_refused(
    spark, three_class_model, texts, tmp_path
):
    out = str(tmp_path / "out")
    score_table(spark, job(texts, out, "output.mode=merge"))
    old = spark.read.format("delta").load(out).drop("text_sentiment_probabilities")
    old.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(out)
    version = spark.sql(f"DESCRIBE HISTORY delta.`{out}` LIMIT 1").first()["version"]
    with pytest.raises(DataError, match="lacks column.s. text_sentiment_probabilities that scoring writes; set"):
        score_table(spark, job(texts, out, "output.mode=merge", "output.evolve_schema=false"))
    assert spark.sql(f"DESCRIBE HISTORY delta.`{out}` LIMIT 1").first()["version"] == version
    summary = score_table(spark, job(texts, out, "output.mode=merge"))
    assert summary.columns_added == ["text_sentiment_probabilities"]
    table = spark.read.format("delta").load(out)
    assert table.where(F.col("text_sentiment_probabilities").isNotNull()).count() == 3
    assert table.count() == 5


def test_an_output_at_one_granularity_is_evolved_or_refused_at_the_other(spark, three_class_model, texts, tmp_path):
    out = str(tmp_path / "out")
    score_table(spark, job(texts, out, "output.mode=merge"))
    summary = score_table(spark, job(texts, out, "output.mode=merge", "score.granularity=sentence"))
    assert summary.columns_added == ["text_sentences", "text_sentiment_evidence"]
    version = spark.sql(f"DESCRIBE HISTORY delta.`{out}` LIMIT 1").first()["version"]
    with pytest.raises(
        DataError, match="holds column.s. text_sentences, text_sentiment_evidence of score.granularity sentence"
    ):
        score_table(spark, job(texts, out, "output.mode=merge"))
    assert spark.sql(f"DESCRIBE HISTORY delta.`{out}` LIMIT 1").first()["version"] == version
    # an overwrite replaces every row, so it may change the granularity
    assert score_table(spark, job(texts, out, "output.mode=overwrite")).status == "succeeded"


def test_evaluation_of_a_three_class_model(spark, three_class_model, tmp_path):
    from spark_sentiment.validation.job import main

    rows = [(f"s{i}", SENTENCES[i % 5], i % 5 + 1) for i in range(40)]
    path = str(tmp_path / "graded")
    spark.createDataFrame(rows, "id string, sentence string, grade int").write.format("delta").save(path)
    args = [f"input.path={path}", "input.text_column=sentence", "input.label_column=grade", f"input.label_map={GRADES}"]
    args += [f"models.candidate=models:/{THREE}@champion", "models.champion=null", "promotion.promote=false", EXACT]
    code, out, err = call_main(main, [x for arg in args for x in ("--set", arg)])
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    candidate = summary["candidate"]
    assert candidate["rows"] == 40 and 0 <= candidate["f1"] <= 1 and 0 <= candidate["ece"] <= 1
    metrics = mlflow.artifacts.load_dict(f"runs:/{summary['mlflow_run_id']}/summary.json")
    assert metrics["status"] == "evaluated"
    bad = [*args[:3], "input.label_map={1: NEGATIVE, 2: NEGATIVE, 4: POSITIVE, 5: POSITIVE}", *args[4:]]
    code, _, err = call_main(main, [x for arg in bad for x in ("--set", arg)])
    assert code == 2 and "has value 3 in 8 row(s) that input.label_map does not map" in err
    assert np.isfinite(candidate["roc_auc"])


def test_sql_functions_give_probabilities_and_sentences(spark, three_class_model, texts):
    from spark_sentiment.inference.predictor import PredictorOptions
    from spark_sentiment.inference.sql import register_sentiment_function

    uri = f"models:/{THREE}@champion"
    register_sentiment_function(spark, uri, "three", PredictorOptions(precision="fp32"))
    sentences = PredictorOptions(precision="fp32", granularity="sentence")
    register_sentiment_function(spark, uri, "three_sentences", sentences)
    spark.read.format("delta").load(texts).createOrReplaceTempView("texts_view")
    rows = {
        r["id"]: r
        for r in spark.sql(
            "SELECT id, three(text) AS review, three_sentences(text) AS sentences FROM texts_view"
        ).collect()
    }
    assert rows[3]["review"]["label"] is None and rows[3]["sentences"]["sentences"] is None
    review, found = rows[1]["review"], rows[1]["sentences"]
    assert set(review["probabilities"]) == set(LABELS)
    assert [(s["start"], s["end"]) for s in found["sentences"]] == sentence_spans(TEXTS[0][1])
    assert found["evidence"] in found["sentences"] and found["label"] in LABELS + ["MIXED"]


def test_incremental_rescores_every_row_when_the_granularity_changes(spark, three_class_model, texts, tmp_path):
    out = str(tmp_path / "out")
    assert score_table(spark, job(texts, out, "output.mode=incremental")).method == "initial"
    changed = score_table(spark, job(texts, out, "output.mode=incremental", "score.granularity=sentence"))
    assert (changed.method, changed.rows_in, changed.columns_added) == (
        "granularity_change",
        5,
        ["text_sentences", "text_sentiment_evidence"],
    )
    table = spark.read.format("delta").load(out)
    assert table.count() == 5 and table.where(F.col("text_sentences").isNotNull()).count() == 3
    again = score_table(spark, job(texts, out, "output.mode=incremental", "score.granularity=sentence"))
    assert again.status == "up_to_date"
