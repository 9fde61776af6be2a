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
    # precision auto: the recorded bf16 agreement decides whether bf16 was a candidate; if it was, both
    # precisions were timed on this CPU and their rows/s reported
    agreement = minilm_model["precision"]["cpu_bf16_agreement"]["agreement"]
    (choice,) = summaries["auto"].precision
    assert choice["tasks"] >= 1 and choice["cpu"]
    if agreement >= 0.99:
        assert set(choice["rows_per_s"]) == {"fp32", "bf16"} and choice["chosen"] in ("fp32", "bf16")
    else:
        assert (choice["chosen"], choice["rows_per_s"]) == ("fp32", {})
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
