"""One Spark session and one MLflow store for the whole run; small data is built inline by the tests."""

from __future__ import annotations

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
    from spark_sentiment.session import get_spark

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
    from spark_sentiment.config.train import TrainJobConfig
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


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command from the repo root with the test session's environment plus ``env``."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


PYTHON = sys.executable


# 40 short reviews, two of them unscorable (null and blank), for the cluster test.
ROWS_FOR_CLUSTER = [(i, (POSITIVE + NEGATIVE)[i % 8]) for i in range(38)] + [(38, None), (39, "  ")]
