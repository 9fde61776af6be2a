"""Scoring with both engines on small Delta tables (real Spark, Delta, MLflow; tiny random model)."""

from __future__ import annotations

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.config import load_config
from spark_sentiment.core.errors import DataError, ModelError
from spark_sentiment.inference.sql import register_sentiment_function
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import main, score_table
from stubs import KeywordPredictor
from support.commands import call_main
from support.data import EXACT

TINY = "models:/TinySentiment@champion"
SCHEMA = "id int, title string, body string"
LONG = " ".join(["An endless film that never seems to finish."] * 70)  # ~600+ tokens
ROWS = [
    (1, "Great", "I love this movie, wonderful acting."),
    (2, None, "this movie was the worst, boring!"),
    (3, "", "   "),
    (4, " \t\n", None),
    (5, LONG, "Ein wunderbarer Film, ich habe jede Minute genossen."),
    (6, "これは素晴らしい映画です", "Фильм ужасный, скучный и слишком длинный."),
    (7, "<br /><br />Bad.", "😀😀 loved it 🎬"),
]


@pytest.fixture()
def reviews(spark, tmp_path):
    path = str(tmp_path / "reviews")
    spark.createDataFrame(ROWS, SCHEMA).write.format("delta").save(path)
    return path


def cfg(input_path, output_path, *overrides):
    return load_config(
        ScoreJobConfig,
        None,
        [
            f"input.path={input_path}",
            f"output.path={output_path}",
            "input.text_columns=[title, body]",
            "input.key_columns=[id]",
            f"model.uri={TINY}",
            EXACT,  # the engines and reruns compared score for score
            *overrides,
        ],
    )


def read(spark, path):
    return spark.read.format("delta").load(str(path))


def test_both_engines_label_several_columns_identically(spark, tiny_model, reviews, tmp_path):
    native = score_table(spark, cfg(reviews, tmp_path / "native", "engine=native"))
    served = score_table(spark, cfg(reviews, tmp_path / "mlflow", "engine=mlflow"))
    for summary in (native, served):
        assert summary.rows_in == 7
        assert summary.model == f"TinySentiment/{tiny_model['model_version']}"
        assert summary.rows_scored == 9 and summary.null_texts == 5
        assert sum(summary.label_counts["title"].values()) == 4
        assert sum(summary.label_counts["body"].values()) == 5
    labels = ["id", "title_sentiment", "body_sentiment"]
    assertDataFrameEqual(
        read(spark, tmp_path / "native").select(labels), read(spark, tmp_path / "mlflow").select(labels)
    )
    a = read(spark, tmp_path / "native").alias("a")
    b = read(spark, tmp_path / "mlflow").alias("b")
    worst = (
        a.join(b, "id")
        .select(F.max(F.abs(F.col("a.body_sentiment_score") - F.col("b.body_sentiment_score"))))
        .first()[0]
    )
    assert worst < 1e-4
    # every label's probability, the same from both engines
    pairs = a.join(b, "id").select("a.body_sentiment_probabilities", "b.body_sentiment_probabilities").collect()
    for native_p, mlflow_p in pairs:
        assert (native_p is None) == (mlflow_p is None)
        if native_p is not None:
            assert set(native_p) == set(mlflow_p) == {"NEGATIVE", "POSITIVE"}
            assert max(abs(native_p[k] - mlflow_p[k]) for k in native_p) < 1e-4


def test_native_engine_scores_with_any_predictor_factory(spark, tiny_model, reviews, tmp_path):
    summary = score_table(spark, cfg(reviews, tmp_path / "out", "input.text_columns=[body]"), factory=KeywordPredictor)
    assert summary.label_counts == {"body": {"POSITIVE": 2, "NEGATIVE": 3}}
    expected = spark.createDataFrame(
        [
            (1, "POSITIVE", 0.9),
            (2, "NEGATIVE", 0.9),
            (3, None, None),
            (4, None, None),
            (5, "NEGATIVE", 0.9),
            (6, "NEGATIVE", 0.9),
            (7, "POSITIVE", 0.9),
        ],
        "id int, body_sentiment string, body_sentiment_score float",
    )
    assertDataFrameEqual(read(spark, tmp_path / "out").select(*expected.columns), expected)


def test_output_schema_and_text_policy(spark, tiny_model, reviews, tmp_path):
    score_table(spark, cfg(reviews, tmp_path / "out"))
    out = read(spark, tmp_path / "out")
    assert [(f.name, f.dataType.simpleString()) for f in out.schema.fields] == [
        ("id", "int"),
        ("title", "string"),
        ("body", "string"),
        ("title_sentiment", "string"),
        ("title_sentiment_score", "float"),
        ("title_sentiment_probabilities", "map<string,float>"),
        ("body_sentiment", "string"),
        ("body_sentiment_score", "float"),
        ("body_sentiment_probabilities", "map<string,float>"),
        ("sentiment_model", "string"),
        ("scored_at", "timestamp"),
    ]
    rows = {r["id"]: r for r in out.collect()}
    # null, empty, spaces, and tab/newline-only texts get null label and score
    for key, column in [(2, "title"), (3, "title"), (3, "body"), (4, "title"), (4, "body")]:
        assert rows[key][f"{column}_sentiment"] is None and rows[key][f"{column}_sentiment_score"] is None
        assert rows[key][f"{column}_sentiment_probabilities"] is None
    for key in (1, 5, 6, 7):  # long, non-Latin, HTML and emoji texts all get a label
        assert rows[key]["title_sentiment"] in ("NEGATIVE", "POSITIVE")
        assert 0.5 <= rows[key]["title_sentiment_score"] <= 1.0
        probabilities = rows[key]["title_sentiment_probabilities"]
        assert set(probabilities) == {"NEGATIVE", "POSITIVE"}
        assert abs(sum(probabilities.values()) - 1) < 1e-5
        assert probabilities[rows[key]["title_sentiment"]] == rows[key]["title_sentiment_score"]
    assert {r["sentiment_model"] for r in rows.values()} == {f"TinySentiment/{tiny_model['model_version']}"}
    assert len({r["scored_at"] for r in rows.values()}) == 1


def test_merge_rerun_keeps_rows_and_labels(spark, tiny_model, reviews, tmp_path):
    job = cfg(reviews, tmp_path / "out", "output.mode=merge")
    first = score_table(spark, job)
    before = read(spark, tmp_path / "out").drop("scored_at")
    second = score_table(spark, job)
    after = read(spark, tmp_path / "out").drop("scored_at")
    assert after.count() == 7
    assertDataFrameEqual(before, after)
    assert second.output_version == first.output_version + 1


def test_append_and_overwrite(spark, tiny_model, reviews, tmp_path):
    score_table(spark, cfg(reviews, tmp_path / "out", "output.mode=append"))
    score_table(spark, cfg(reviews, tmp_path / "out", "output.mode=append"))
    assert read(spark, tmp_path / "out").count() == 14
    score_table(spark, cfg(reviews, tmp_path / "out", "output.mode=overwrite"))
    assert read(spark, tmp_path / "out").count() == 7


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (
            ["input.text_columns=[headline]"],
            DataError,
            "text column 'headline' not found in delta:.*columns: id, title, body",
        ),
        (["input.text_columns=[id]"], DataError, "text column 'id' in delta:.* is int, expected string"),
        (
            ["model.uri=models:/TinySentiment@nosuchalias"],
            ModelError,
            "model URI models:/TinySentiment@nosuchalias cannot be resolved",
        ),
        (["model.uri=models:/NoSuchModel/1"], ModelError, "model URI models:/NoSuchModel/1 cannot be resolved"),
        (["model.uri=/tmp/definitely/not/a/model"], ModelError, "no MLflow model"),
        (["input.key_columns=[nokey]"], DataError, "key column 'nokey' not found"),
    ],
)
def test_bad_input_fails_before_writing(spark, tiny_model, reviews, tmp_path, overrides, error, message):
    out = tmp_path / "out"
    spark.createDataFrame([(1, "kept")], "id int, title string").write.format("delta").save(str(out))
    before = read(spark, out).collect()
    with pytest.raises(error, match=message):
        score_table(spark, cfg(reviews, out, *overrides))
    assert sorted(read(spark, out).collect()) == sorted(before)
    assert DeltaTable.forPath(spark, str(out)).history().count() == 1  # no new commit


def test_output_path_that_is_not_delta_is_refused(spark, tiny_model, reviews, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="output path .*plain exists but is not a Delta table"):
        score_table(spark, cfg(reviews, tmp_path / "plain"))
    assert (tmp_path / "plain" / "data.csv").read_text() == "a,b\n1,2\n"


def test_output_version_is_read_from_its_history(spark, tmp_path):
    """What a write reads before it commits: the output's version; None where nothing is yet; a refusal for
    something that is not a Delta table, at a path or in the catalog."""
    from spark_sentiment.io.delta import table_version
    from spark_sentiment.io.tables import TableRef

    path = tmp_path / "out"
    assert table_version(spark, TableRef.of(str(path))) is None
    spark.range(2).write.format("delta").save(str(path))
    spark.range(1).write.format("delta").mode("append").save(str(path))
    assert table_version(spark, TableRef.of(str(path))) == 1
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "data.csv").write_text("a\n1\n")
    with pytest.raises(DataError, match="output path .*plain exists but is not a Delta table"):
        table_version(spark, TableRef.of(str(tmp_path / "plain")))
    assert table_version(spark, TableRef.of(table="no_such_output")) is None
    spark.range(1).write.format("parquet").saveAsTable("plain_parquet_output")
    try:
        with pytest.raises(DataError, match="output table plain_parquet_output exists but is not a Delta table"):
            table_version(spark, TableRef.of(table="plain_parquet_output"))
    finally:
        spark.sql("DROP TABLE plain_parquet_output")


def test_catalog_tables_and_sql_function(spark, tiny_model, reviews):
    spark.read.format("delta").load(reviews).write.format("delta").mode("overwrite").saveAsTable("reviews_in")
    job = load_config(
        ScoreJobConfig,
        None,
        [
            "input.table=`default`.`reviews_in`",  # qualified, backtick-quoted parts (as `my-catalog`.ml.x)
            "output.table=`default`.reviews_scored",
            "input.text_columns=[body]",
            "input.key_columns=[id]",
            "output.mode=merge",
            f"model.uri={TINY}",
        ],
    )
    summary = score_table(spark, job)
    assert summary.output == "table `default`.reviews_scored"
    counts = spark.sql("SELECT body_sentiment, count(*) AS n FROM reviews_scored GROUP BY 1").collect()
    assert sum(r["n"] for r in counts) == 7
    assert register_sentiment_function(spark, TINY) == f"TinySentiment/{tiny_model['model_version']}"
    via_sql = spark.sql("SELECT id, sentiment(body).label AS label FROM reviews_in")
    via_job = spark.table("reviews_scored").select("id", F.col("body_sentiment").alias("label"))
    assertDataFrameEqual(via_sql, via_job)


def test_openvino_runtime_scores_tables_and_sql_as_torch_does(spark, tiny_model, reviews, tmp_path):
    """score.runtime openvino through the job's native engine and the SQL function: the executors' summary
    says OpenVINO ran, and labels and probabilities equal torch fp32's."""
    from spark_sentiment.inference.predictor import PredictorOptions

    torch32 = score_table(spark, cfg(reviews, tmp_path / "torch"))
    graph = score_table(spark, cfg(reviews, tmp_path / "openvino", "score.runtime=openvino"))
    assert [r["chosen"] for r in torch32.precision] == ["fp32"]
    assert [(r["chosen"], r["reason"]) for r in graph.precision] == [("openvino-fp32", "configured")]
    assert graph.precision[0]["prepare_seconds"]["openvino-fp32"] > 0
    assert graph.label_counts == torch32.label_counts
    a, b = read(spark, tmp_path / "torch").alias("a"), read(spark, tmp_path / "openvino").alias("b")
    pairs = a.join(b, "id").select("a.body_sentiment_probabilities", "b.body_sentiment_probabilities").collect()
    for ours, theirs in pairs:
        assert (ours is None) == (theirs is None)
        if ours is not None:
            assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-4
    options = PredictorOptions(precision="fp32", runtime="openvino")
    register_sentiment_function(spark, TINY, "sentiment_ov", options)
    spark.read.format("delta").load(reviews).createOrReplaceTempView("reviews_ov")
    via_sql = spark.sql("SELECT id, sentiment_ov(body).label AS label FROM reviews_ov")
    assertDataFrameEqual(via_sql, a.select("id", F.col("body_sentiment").alias("label")))


def test_score_job_entry_point_reports_one_line_on_integer_text_column(tiny_model, reviews, tmp_path):
    out = tmp_path / "out"
    args = [f"input.path={reviews}", f"output.path={out}", "input.text_columns=[id]", "input.key_columns=[id]"]
    code, stdout, stderr = call_main(main, sum((["--set", a] for a in [*args, f"model.uri={TINY}"]), []))
    assert code == 2 and stdout == ""
    assert stderr.strip().splitlines()[-1].startswith("error: text column 'id' in delta:")
    assert not out.exists()


def test_every_model_uri_form_resolves_to_a_concrete_model(tiny_model):
    from mlflow.tracking import MlflowClient
    from spark_sentiment.inference.package import build_package
    from spark_sentiment.model.registry import resolve_model

    version = MlflowClient().get_model_version("TinySentiment", tiny_model["model_version"])
    by_alias = resolve_model("models:/TinySentiment@champion")
    assert by_alias.uri == f"models:/TinySentiment/{tiny_model['model_version']}"
    assert by_alias.label == f"TinySentiment/{tiny_model['model_version']}"
    assert by_alias.source == version.source  # the registry's own record: part of the package cache key
    assert int(resolve_model("models:/TinySentiment/latest").version) >= int(tiny_model["model_version"])
    for uri in (version.source, f"runs:/{tiny_model['run_id']}/model"):  # models:/m-<id> and runs:/
        resolved = resolve_model(uri)
        assert resolved.uri == uri and resolved.label == uri
        assert build_package(resolved).id2label == {0: "NEGATIVE", 1: "POSITIVE"}
    with pytest.raises(ModelError, match="model URI models:/m-nosuchmodel cannot be resolved"):
        resolve_model("models:/m-nosuchmodel")
    with pytest.raises(ModelError, match="unsupported scheme"):
        resolve_model("s3x://bucket/model")
