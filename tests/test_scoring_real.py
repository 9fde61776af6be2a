"""The session's MiniLM (fine-tuned on real IMDB reviews): both engines must agree on real reviews."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import IMDB
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.config import load_config
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.scoring.job import score_table

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
    for engine in ("native", "mlflow"):
        summary = score_table(
            spark,
            load_config(
                ScoreJobConfig,
                None,
                [
                    f"input.path={path}",
                    f"output.path={tmp_path / engine}",
                    "input.key_columns=[review_id]",
                    f"model.uri={uri}",
                    f"engine={engine}",
                ],
            ),
        )
        assert (summary.rows_in, summary.rows_scored, summary.null_texts) == (60, 58, 2)
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
