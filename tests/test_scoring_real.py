"""The session's MiniLM (fine-tuned on real IMDB reviews): both engines must agree on real reviews."""

from __future__ import annotations

import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.config import load_config
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import score_table
from support.data import IMDB

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (IMDB / "test.parquet").exists(), reason="needs IMDB parquet beside the repo"),
]


def test_engines_give_identical_labels_on_real_reviews(spark, minilm_model, tmp_path):
    reviews = pd.read_parquet(IMDB / "test.parquet").sample(n=60, random_state=0)[["review_id", "text"]]
    reviews.loc[reviews.index[:2], "text"] = [None, "   "]
    path = str(tmp_path / "imdb_sample")
    spark.createDataFrame(reviews).repartition(2).write.format("delta").save(path)
    uri = minilm_model["model_uri"]
    summaries = {}
    # the engines compared in fp32 (the mlflow engine's pipeline runs fp32); native "auto" also, for its choice
    for run, engine, precision in (
        ("native", "native", "fp32"),
        ("mlflow", "mlflow", "auto"),
        ("auto", "native", "auto"),
    ):
        summary = score_table(
            spark,
            load_config(
                ScoreJobConfig,
                None,
                [
                    f"input.path={path}",
                    f"output.path={tmp_path / run}",
                    "input.key_columns=[review_id]",
                    f"model.uri={uri}",
                    f"engine={engine}",
                    f"score.precision={precision}",
                ],
            ),
        )
        assert (summary.rows_in, summary.rows_scored, summary.null_texts) == (60, 58, 2)
        summaries[run] = summary
    # precision auto: the recorded bf16 agreement decides whether bf16 was a candidate, the recorded int8 check
    # whether OpenVINO's one candidate (this venv has the openvino extra) is int8 or its best float precision;
    # every candidate was timed on this CPU and its rows/s reported
    recorded = minilm_model["precision"]
    bf16 = recorded["cpu_bf16_agreement"]["agreement"] >= 0.99
    int8 = recorded["cpu_int8_agreement"]
    int8 = int8["agreement"] >= 0.995 and int8["accuracy_change"] >= -0.003
    expected = ["fp32", "bf16"] if bf16 else ["fp32"]
    expected.append("openvino-int8" if int8 else f"openvino-{expected[-1]}")
    (choice,) = summaries["auto"].precision
    assert choice["tasks"] >= 1 and choice["cpu"]
    assert set(choice["rows_per_s"]) == set(expected) and choice["chosen"] in expected
    assert summaries["native"].precision[0]["reason"] == "configured"
    native = spark.read.format("delta").load(str(tmp_path / "native"))
    served = spark.read.format("delta").load(str(tmp_path / "mlflow"))
    assertDataFrameEqual(native.select("review_id", "text_sentiment"), served.select("review_id", "text_sentiment"))
    diff = (
        native.alias("a")
        .join(served.alias("b"), "review_id")
        .select(F.max(F.abs(F.col("a.text_sentiment_score") - F.col("b.text_sentiment_score"))))
        .first()[0]
    )
    assert diff < 1e-3
