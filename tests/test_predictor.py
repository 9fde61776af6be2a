"""The executor-side predictor on its own (no Spark task): batching, text policy, precision options."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from spark_sentiment.inference.package import build_package
from spark_sentiment.inference.predictor import Predictor, PredictorOptions, cached_predictor
from spark_sentiment.model.registry import resolve_model


@pytest.fixture(scope="module")
def package(tiny_model):
    return build_package(resolve_model("models:/TinySentiment@champion"))


def test_batches_respect_rows_and_token_budget(package):
    predictor = Predictor(package.local_dir, PredictorOptions(batch_size=4, max_tokens=100))
    lengths = np.array([10, 60, 5, 30, 30, 7, 9, 64])
    batches = predictor.batches(lengths)
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    for batch in batches:
        assert len(batch) <= 4
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 100
        assert list(lengths[batch]) == sorted(lengths[batch])


def test_predict_keeps_order_and_nulls_blank_text(package):
    # fp32 pinned: `auto` may measure bf16 faster here, and bf16 sums differ with the batch's padded width
    predictor = Predictor(package.local_dir, PredictorOptions(batch_size=3, precision="fp32"))
    texts = pd.Series(["short", None, "a much longer review " * 50, "", "   ", "medium length text here"])
    out = predictor.predict(texts)
    assert list(out.columns) == ["label", "score", "probabilities"] and len(out) == 6
    assert out["label"].isna().tolist() == [False, True, False, True, True, False]
    assert out["probabilities"].isna().tolist() == out["label"].isna().tolist()
    assert out["probabilities"][0][out["label"][0]] == pytest.approx(out["score"][0])
    # the same text alone or inside a batch of other lengths gets the same label and score
    alone = predictor.predict(pd.Series(["medium length text here"]))
    assert alone["label"][0] == out["label"][5] and abs(alone["score"][0] - out["score"][5]) < 1e-5


def test_slices_of_a_long_arrow_batch_score_like_one_pass(package, monkeypatch):
    import spark_sentiment.inference.predictor as predictor_module

    texts = pd.Series([f"review {i} " + "good " * (i % 9) + "bad " * (i % 5) if i % 7 else None for i in range(50)])
    options = PredictorOptions(batch_size=8, precision="fp32")  # as above: the same sums in any batch width
    whole = Predictor(package.local_dir, options).predict(texts)
    monkeypatch.setattr(predictor_module, "CHUNK_ROWS", 6)
    sliced = Predictor(package.local_dir, options).predict(texts)
    pd.testing.assert_series_equal(sliced["label"], whole["label"])
    np.testing.assert_allclose(sliced["score"], whole["score"], atol=1e-5)
    assert sliced["label"].isna().sum() == 8  # the None rows stay null, in place


def test_truncates_to_the_models_limit(package):
    predictor = Predictor(package.local_dir, PredictorOptions())
    assert predictor.max_length == 64  # the tiny model was trained with train.max_length=64
    assert max(len(t) for t in predictor.tokenize(["word " * 1000])) == 64


def test_bf16_on_cpu_agrees_with_fp32(package):
    texts = pd.Series([f"review {i}: " + "good " * (i % 20) + "bad " * (i % 7) for i in range(64)])
    fp32 = Predictor(package.local_dir, PredictorOptions(precision="fp32")).predict(texts)
    bf16 = Predictor(package.local_dir, PredictorOptions(precision="bf16")).predict(texts)
    assert (fp32["label"] == bf16["label"]).mean() >= 0.95
    assert np.abs(fp32["score"] - bf16["score"]).max() < 0.05


def test_predictor_is_cached_per_worker(package):
    options = PredictorOptions(batch_size=8)
    assert cached_predictor(str(package.local_dir), options) is cached_predictor(str(package.local_dir), options)


def test_worker_cache_keeps_the_most_recently_used_models_only():
    built = []

    def factory(model_dir, options, gpu_address=None):
        built.append(model_dir)
        return object()

    options = PredictorOptions()
    first = cached_predictor("/models/a", options, None, factory, max_models=2)
    cached_predictor("/models/b", options, None, factory, max_models=2)
    assert cached_predictor("/models/a", options, None, factory, max_models=2) is first  # a is now the newest
    cached_predictor("/models/c", options, None, factory, max_models=2)  # evicts b, the least recently used
    import spark_sentiment.inference.predictor as predictor_module

    cached = list(predictor_module._CACHE)  # keys, least recently used first
    assert [key[1] for key in cached if key[0].endswith("factory")][-2:] == ["/models/a", "/models/c"]
    cached_predictor("/models/b", options, None, factory, max_models=2)
    assert built == ["/models/a", "/models/b", "/models/c", "/models/b"]


@pytest.mark.gpu
def test_gpu_predictor_matches_cpu_labels(package):
    texts = pd.Series([f"review {i}: " + "good " * (i % 20) + "bad " * (i % 7) for i in range(64)])
    cpu = Predictor(package.local_dir, PredictorOptions(device="cpu")).predict(texts)
    gpu = Predictor(package.local_dir, PredictorOptions(device="cuda")).predict(texts)
    assert (cpu["label"] == gpu["label"]).mean() >= 0.95
