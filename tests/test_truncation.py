"""The truncation window: one definition for training, both engines, the SQL function and mlflow.pyfunc."""

from __future__ import annotations

import importlib.util

import datasets
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from pyspark.sql import functions as F
from spark_sentiment.core.errors import ModelError
from spark_sentiment.inference.engines import scoring_function
from spark_sentiment.inference.predictor import PredictorOptions, resolve_window
from spark_sentiment.inference.sql import register_sentiment_function
from spark_sentiment.model.base import embedded_model_dir
from spark_sentiment.model.registry import resolve_model
from spark_sentiment.model.window import Window, encode, special_tokens
from support.data import IMDB, REPO


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model_dir())


def words(n: int, start: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(start, start + n))


def test_strategies_keep_the_head_the_tail_or_both(tokenizer):
    prefix, suffix = special_tokens(tokenizer)
    assert (prefix, suffix) == ([tokenizer.cls_token_id], [tokenizer.sep_token_id])
    text = " ".join(["alpha"] * 50 + ["beta"] * 50)  # one token per word
    alpha, beta = tokenizer.convert_tokens_to_ids(["alpha", "beta"])
    body = {
        strategy: encode(tokenizer, [text], Window(strategy, 22))[0][1:-1] for strategy in ("head", "tail", "head_tail")
    }
    assert body["head"] == [alpha] * 20
    assert body["tail"] == [beta] * 20
    assert body["head_tail"] == [alpha] * 5 + [beta] * 15  # a quarter from the start
    assert encode(tokenizer, [text], Window("head_tail", 22, head_tokens=12))[0][1:-1] == [alpha] * 12 + [beta] * 8
    # a review that fits is read whole, whatever the strategy
    short = encode(tokenizer, ["a short review"], Window("tail", 64))[0]
    assert short == tokenizer("a short review")["input_ids"]


def test_head_matches_the_tokenizers_own_truncation_and_long_texts_are_cut_exactly(tokenizer):
    reviews = pd.read_parquet(IMDB / "test.parquet", columns=["text"])["text"].head(200).tolist()
    own = tokenizer(reviews, truncation=True, max_length=128)["input_ids"]
    assert encode(tokenizer, reviews, Window("head", 128)) == own
    # A review of ~200,000 characters is cut by characters before tokenizing; the kept tokens are those
    # of tokenizing it whole.
    huge = words(30000)
    whole = tokenizer(huge, add_special_tokens=False)["input_ids"]
    window = Window("head_tail", 64)
    expected = [tokenizer.cls_token_id] + whole[:15] + whole[-47:] + [tokenizer.sep_token_id]
    assert encode(tokenizer, [huge], window) == [expected]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategy": "middle"}, "truncation must be one of head, tail, head_tail, got 'middle'"),
        ({"max_length": 4}, "max_length must be in [8, 8192], got 4"),
        ({"max_length": 64, "head_tokens": 64}, "head_tokens must be in [0, max_length), got 64"),
    ],
)
def test_bad_windows_are_refused_with_the_value(kwargs, message):
    with pytest.raises(ValueError) as raised:
        Window(**kwargs)
    assert str(raised.value) == message
    with pytest.raises(ModelError, match="score window: head_tokens must be in"):
        resolve_window(Window("head_tail", 64), PredictorOptions(head_tokens=80))


def test_scoring_options_resolve_over_the_recorded_window():
    recorded = Window("head_tail", 512)
    assert resolve_window(recorded, PredictorOptions()) == recorded
    assert resolve_window(recorded, PredictorOptions(profile="fast")) == Window("head_tail", 256)
    assert resolve_window(Window("head", 128), PredictorOptions(profile="fast")) == Window("head_tail", 128)
    assert resolve_window(recorded, PredictorOptions(profile="fast", max_length=384)) == Window("head_tail", 384)
    assert resolve_window(recorded, PredictorOptions(truncation="head")) == Window("head", 512)


def test_quality_benchmark_draws_rows_as_the_training_job_does():
    spec = importlib.util.spec_from_file_location("quality", REPO / "benchmarks" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    frame = pd.DataFrame({"i": np.arange(500)})
    drawn = datasets.Dataset.from_pandas(frame).shuffle(seed=42).select(range(100, 160))["i"]
    assert quality.shuffled(500, 42, 60, start=100).tolist() == drawn


FILLER = (
    "The film follows a man who moves to a small town in the north and takes a job at the local library. "
    "His neighbour runs a bakery, and the two of them meet every morning at the bus stop before work. "
) * 8
VERDICTS = {
    "NEGATIVE": "Honestly this was the worst, most boring and awful film I have ever seen, a terrible waste of time.",
    "POSITIVE": "Honestly this was the best, most wonderful and brilliant film I have ever seen, a masterpiece.",
}


@pytest.mark.slow
def test_a_verdict_in_the_last_sentence_reaches_every_scoring_path(spark, minilm_model):
    """Two reviews that differ only in their last sentence, far beyond the first 96 tokens."""
    uri = minilm_model["model_uri"]
    # recorded with the model: the training window (96 tokens, head + tail), in the MLmodel and the summary
    assert minilm_model["window"] == {"window": "head_tail", "max_length": 96, "head_tokens": None}
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    mlmodel = yaml.safe_load(open(f"{local}/MLmodel"))
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "spark_sentiment_window"
    assert mlmodel["flavors"]["python_function"]["config"] == minilm_model["window"]
    assert mlmodel["metadata"]["spark_sentiment_window"] == minilm_model["window"]

    expected = list(VERDICTS)
    texts = [FILLER + VERDICTS[label] for label in expected]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id int, text string")
    resolved = resolve_model(uri)

    def labels(engine: str, options: PredictorOptions) -> pd.DataFrame:
        score = scoring_function(spark, resolved, engine, options)
        rows = df.select("id", score(F.col("text")).alias("s")).orderBy("id").collect()
        return pd.DataFrame({"label": [r.s.label for r in rows], "score": [r.s.score for r in rows]})

    fp32 = PredictorOptions(precision="fp32")
    native = labels("native", fp32)
    served = labels("mlflow", fp32)
    register_sentiment_function(spark, uri, name="sentiment_window_test", options=fp32)
    df.createOrReplaceTempView("verdict_reviews")
    sql = spark.sql("SELECT sentiment_window_test(text).label AS label FROM verdict_reviews ORDER BY id").toPandas()
    pyfunc = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"text": texts}))

    assert native["label"].tolist() == expected
    assert served["label"].tolist() == expected
    assert sql["label"].tolist() == expected
    assert pyfunc["label"].tolist() == expected
    assert np.abs(native["score"].to_numpy() - pyfunc["score"].to_numpy()).max() < 1e-3
    assert np.abs(native["score"].to_numpy() - served["score"].to_numpy()).max() < 1e-3

    # Read from the head only, the two reviews are the same text: one label, one score, for both engines.
    for engine in ("native", "mlflow"):
        head = labels(engine, PredictorOptions(precision="fp32", truncation="head"))
        assert head["label"].nunique() == 1 and head["score"].nunique() == 1, engine


def test_the_window_module_ships_from_a_zipped_package(tmp_path):
    """spark-submit.sh ships the package as a zip (--py-files): the logged model's loader must still be
    written from it (a file copy of window.py failed there)."""
    import subprocess
    import sys
    import zipfile

    package = REPO / "lib" / "spark_sentiment"
    archive = tmp_path / "spark_sentiment.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in package.rglob("*.py"):
            zipped.write(path, path.relative_to(package.parent).as_posix())
    code = "import spark_sentiment.model.window as w; print(w.__file__); print(len(w.source()))"
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(archive)}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    where, size = result.stdout.split()
    assert where.startswith(str(archive)) and int(size) == len((package / "model" / "window.py").read_text())
