"""One Spark session, one MLflow store and two trained models for the whole run; small data is built inline.

Models: ``tiny_model`` (a tiny random BERT, seconds to train) for every test where any model will do, and
``minilm_model`` (the packaged MiniLM fine-tuned once on real IMDB reviews, ~2 min) for the tests that need
a model that has learned something. Jobs are called in-process through their entry functions; only the
fault, race and cluster tests start processes of their own.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Real IMDB beside the repo (CI lays ../shared next to the clone); $IMDB_DATA wins.
IMDB = Path(os.environ.get("IMDB_DATA") or REPO.parent / "shared" / "data" / "imdb")

POSITIVE = [
    "I love this movie, the acting was wonderful and the story moving.",
    "A brilliant, beautiful film. Great cast and a great script.",
    "One of the best movies I have seen this year; funny and warm.",
    "Excellent direction, superb soundtrack, I enjoyed every minute.",
]
NEGATIVE = [
    "This movie was the worst, boring and far too long.",
    "Terrible acting, awful dialogue, a complete waste of time.",
    "I hated it. The plot made no sense and the ending was stupid.",
    "Dull, lifeless and badly edited; avoid this film.",
]


def labeled_rows(n: int = 64) -> list[tuple[str, str, int]]:
    """``(review_id, text, label)`` rows cycling through short positive and negative reviews."""
    rows = []
    for i in range(n):
        texts, label = (POSITIVE, 1) if i % 2 else (NEGATIVE, 0)
        rows.append((f"r{i}", texts[(i // 2) % len(texts)], label))
    return rows


def gpu_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def project_dir(tmp_path_factory) -> Path:
    """Data dir and MLflow store of the test session (jobs started by tests get their own data dirs)."""
    base = tmp_path_factory.mktemp("project")
    os.environ["SPARK_SENTIMENT_DATA"] = str(base)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{base}/mlflow/mlflow.db"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return base


@pytest.fixture(scope="session")
def spark(project_dir):
    import stubs
    from pyspark import cloudpickle
    from spark_sentiment.core.session import get_spark

    cloudpickle.register_pickle_by_value(stubs)  # workers cannot import tests/; the factories travel by value

    session = get_spark(
        "spark-sentiment-tests",
        conf={
            "spark.master": "local[2,2]",  # a failed task is retried once, as on a cluster
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
        },
        base_dir=project_dir,
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tiny_model(spark, project_dir, tmp_path_factory) -> dict:
    """A tiny random-init BERT (real MiniLM vocabulary) trained for a few steps and registered."""
    from spark_sentiment.config import load_config
    from spark_sentiment.training.config import TrainJobConfig
    from spark_sentiment.training.trainer import train_and_register

    source = tmp_path_factory.mktemp("labeled") / "reviews"
    spark.createDataFrame(labeled_rows(64), "review_id string, text string, label int").write.format("delta").save(
        str(source)
    )
    cfg = load_config(
        TrainJobConfig,
        None,
        [
            f"data.path={source}",
            "data.train_rows=48",
            "data.eval_rows=16",
            "model.base=tiny-random",
            "train.max_steps=6",
            "train.batch_size=8",
            "train.max_length=64",
            "registry.name=TinySentiment",
        ],
    )
    return train_and_register(spark, cfg)


MINILM = "MiniLM"  # registered name of the session's fine-tuned MiniLM


@pytest.fixture(scope="session")
def minilm_model(spark) -> dict:
    """The packaged MiniLM fine-tuned on 1,000 real IMDB reviews (1 epoch, 96 tokens), through the training
    job's entry function; eval accuracy 0.765 on its 200 held-out reviews when measured."""
    from spark_sentiment.training.job import main

    if not (IMDB / "train.parquet").exists():
        pytest.skip("needs IMDB parquet beside the repo")
    args = [f"data.path={IMDB}", "data.train_rows=1000", "data.eval_rows=200", "train.epochs=1"]
    args += ["train.max_length=96", "train.learning_rate=1e-4", "train.batch_size=16", f"registry.name={MINILM}"]
    code, out, err = call_main(main, sum((["--set", a] for a in args), []))
    assert code == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def call_main(main, argv: list[str], **kwargs) -> tuple[int, str, str]:
    """Run a job's entry function in this process (the test session's Spark is the active session):
    ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv, **kwargs)
    return code, out.getvalue(), err.getvalue()


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command from the repo root with the test session's environment plus ``env``."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


PYTHON = sys.executable


# 40 short reviews, two of them unscorable (null and blank), for the cluster test.
ROWS_FOR_CLUSTER = [(i, (POSITIVE + NEGATIVE)[i % 8]) for i in range(38)] + [(38, None), (39, "  ")]


# Incremental and fault tests: a keyed table with a change data feed, changed by three commits.
TINY = "models:/TinySentiment@champion"
KEY_SCHEMA = "id int, text string"


def key_rows(n: int = 6) -> list[tuple[int, str]]:
    return [(i, (POSITIVE + NEGATIVE)[i % 8]) for i in range(1, n + 1)]


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


def clean_result(spark, source, tmp_path):
    """What a from-scratch overwrite of the current input gives."""
    from spark_sentiment.scoring.job import score_table

    summary = score_table(spark, job(source, tmp_path / "clean", "output.mode=overwrite"))
    assert summary.status == "succeeded"
    return contents(spark, tmp_path / "clean")


@pytest.fixture()
def cdf_source(spark, tmp_path):
    path = tmp_path / "reviews"
    spark.createDataFrame(key_rows(), KEY_SCHEMA).write.format("delta").save(str(path))
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    return path
