"""The jobs on an object store: every data path is an ``s3a://`` URI on a real S3 API (moto's server on
loopback, see conftest), read and written through Hadoop's s3a file system as on a cluster.

End to end: train from s3a:// Delta, score an s3a:// Delta input into an s3a:// Delta output (merge, and
incremental with a rerun that finds nothing to do), evaluate on s3a:// labeled rows. Delta's default log
store for s3a is the single-driver one; multi-writer S3 needs the DynamoDB log store (docs/deployment.md).
"""

from __future__ import annotations

import json
import uuid

import pytest
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.core.errors import DataError
from spark_sentiment.io.fs import HadoopPaths
from spark_sentiment.io.tables import resolve_source
from spark_sentiment.scoring.job import main as score_main
from spark_sentiment.training.job import main as train_main
from spark_sentiment.validation.job import main as evaluate_main
from support.commands import call_main, sets
from support.data import EXACT, KEY_SCHEMA, TINY, key_rows, labeled_rows
from support.spark_conf import S3_BUCKET
from support.tables import change_source, contents

pytestmark = pytest.mark.slow


@pytest.fixture()
def lake() -> str:
    """A fresh folder in the test bucket."""
    return f"s3a://{S3_BUCKET}/{uuid.uuid4().hex[:8]}"


def test_paths_resolve_through_the_s3a_file_system(spark, lake):
    spark.createDataFrame(labeled_rows(8), "review_id string, text string, label int").write.parquet(
        f"{lake}/splits/train.parquet"
    )
    spark.createDataFrame(key_rows(), KEY_SCHEMA).write.format("delta").save(f"{lake}/delta")
    paths = HadoopPaths(spark)
    assert paths.exists(f"{lake}/delta") and not paths.exists(f"{lake}/nothing")
    assert resolve_source(spark, f"{lake}/delta").format == "delta"
    assert resolve_source(spark, f"{lake}/splits", split="train").location == f"{lake}/splits/train.parquet"
    with pytest.raises(DataError, match=f"input.path: {lake}/nothing does not exist"):
        resolve_source(spark, f"{lake}/nothing", key="input.path")


def test_train_score_and_evaluate_on_s3a(spark, tiny_model, lake):
    # Train from s3a:// Delta (the tiny random BERT: any model shows the paths work).
    labeled = f"{lake}/labeled"
    spark.createDataFrame(labeled_rows(64), "review_id string, text string, label int").write.format("delta").save(
        labeled
    )
    code, out, err = call_main(
        train_main,
        sets(
            f"data.path={labeled}",
            "data.train_rows=48",
            "data.eval_rows=16",
            "model.base=tiny-random",
            "train.max_steps=2",
            "train.batch_size=8",
            "train.max_length=32",
            "registry.name=S3Sentiment",
        ),
    )
    assert code == 0, err[-3000:]
    trained = json.loads(out.strip().splitlines()[-1])
    assert trained["train_rows"] == 48 and trained["eval_rows"] == 16

    # Score s3a:// Delta -> s3a:// Delta: merge, then incremental (first run, a change, a rerun = no-op).
    source = f"{lake}/reviews"
    spark.createDataFrame(key_rows(), KEY_SCHEMA).write.format("delta").save(source)
    spark.sql(f"ALTER TABLE delta.`{source}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")

    def score(output: str, mode: str) -> dict:
        args = sets(f"input.path={source}", f"output.path={output}", "input.key_columns=[id]")
        code, out, err = call_main(score_main, args + sets(f"output.mode={mode}", f"model.uri={TINY}", EXACT))
        assert code == 0, err[-3000:]
        return json.loads(out.strip().splitlines()[-1])

    merged = score(f"{lake}/merged", "merge")
    assert (merged["status"], merged["rows_in"], merged["output"]) == ("succeeded", 6, f"delta:{lake}/merged")
    assert score(f"{lake}/incremental", "incremental")["status"] == "succeeded"
    change_source(spark, source)
    changed = score(f"{lake}/incremental", "incremental")
    assert (changed["status"], changed["method"]) == ("succeeded", "change_data_feed")
    assert score(f"{lake}/incremental", "incremental")["status"] == "up_to_date"
    assert score(f"{lake}/merged", "merge")["status"] == "succeeded"  # upserts the change, keeps deleted id 3
    incremental = contents(spark, f"{lake}/incremental")
    assert sorted(r.id for r in incremental.select("id").collect()) == [1, 2, 4, 5, 6, 7]
    assertDataFrameEqual(incremental, contents(spark, f"{lake}/merged").where("id != 3"))

    # Evaluate the new model on s3a:// labeled rows (no champion yet: evaluated and promoted).
    code, out, err = call_main(
        evaluate_main,
        sets(
            f"input.path={labeled}",
            "input.rows=16",
            "score.max_length=32",
            f"models.candidate=models:/S3Sentiment/{trained['model_version']}",
            "models.champion=models:/S3Sentiment@champion",
        ),
    )
    assert code == 0, err[-3000:]
    evaluated = json.loads(out.strip().splitlines()[-1])
    assert evaluated["rows"] == 16 and evaluated["input"] == f"delta:{labeled}"
