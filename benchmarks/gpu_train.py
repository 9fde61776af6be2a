"""GPU training check: our TrainingArguments + HF Trainer on a bare CUDA box (no Spark, no MLflow there).

Times ``trainer.train()`` for a profile, reports accuracy/F1 on the eval rows and accuracy on a larger
test sample, and can save the fine-tuned model as a native-engine package for ``gpu_check.py``.

    python benchmarks/gpu_train.py --base BASE_DIR --train train.parquet --eval eval.parquet \
        --test test.parquet --set train.batch_size=16 --save-package /tmp/pkg
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))


class Encoded:
    """A list-backed dataset of token ids and labels (what DataCollatorWithPadding pads per batch)."""

    def __init__(self, tokenizer, frame: pd.DataFrame, max_length: int) -> None:
        self.ids = tokenizer(frame["text"].tolist(), truncation=True, max_length=max_length)["input_ids"]
        self.labels = frame["label"].astype(int).tolist()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "attention_mask": [1] * len(self.ids[i]), "labels": self.labels[i]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="base encoder folder (weights + tokenizer)")
    parser.add_argument("--train", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--name", default="run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="train.* config overrides")
    parser.add_argument("--save-package")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    import torch
    from spark_sentiment.config import load_config
    from spark_sentiment.config.train import TrainJobConfig
    from spark_sentiment.model.base import load_base
    from spark_sentiment.training.arguments import training_arguments
    from spark_sentiment.training.metrics import classification_metrics
    from transformers import DataCollatorWithPadding, Trainer

    cfg = load_config(TrainJobConfig, None, [f"model.base={args.base}", *args.overrides])
    started = time.perf_counter()
    model, tokenizer = load_base(args.base, cfg.model.labels, cfg.train.max_length, cfg.train.seed)
    model = model.float()  # the carried base is fp16; train in fp32 master weights + bf16 autocast
    frames = {k: pd.read_parquet(getattr(args, k)) for k in ("train", "eval", "test")}
    data = {k: Encoded(tokenizer, f, tokenizer.model_max_length) for k, f in frames.items()}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            model=model,
            args=training_arguments(cfg.train, tmp, report_to=[]),
            train_dataset=data["train"],
            eval_dataset=data["eval"],
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=classification_metrics,
        )
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        sync()
        train_started = time.perf_counter()
        trainer.train()
        sync()
        train_seconds = time.perf_counter() - train_started
        final = trainer.evaluate()
        test_pred = trainer.predict(data["test"])
    # label_ids come back in the order predictions were made (length grouping may reorder eval batches too)
    test_accuracy = float((np.argmax(test_pred.predictions, -1) == test_pred.label_ids).mean())
    result = {
        "name": args.name,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "train_rows": len(data["train"]),
        "epochs": cfg.train.epochs,
        "batch_size": cfg.train.batch_size,
        "learning_rate": cfg.train.learning_rate,
        "max_length": cfg.train.max_length,
        "group_by_length": cfg.train.group_by_length,
        "optim": cfg.train.optim,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "eval_accuracy": round(final["eval_accuracy"], 4),
        "eval_f1": round(final["eval_f1"], 4),
        "eval_rows": len(data["eval"]),
        "test_accuracy": round(test_accuracy, 4),
        "test_rows": len(data["test"]),
    }
    if args.save_package:
        target = Path(args.save_package)
        trainer.model.save_pretrained(target / "model")
        tokenizer.save_pretrained(target / "tokenizer")
        config = trainer.model.config
        meta = {
            "model": args.name,
            "id2label": {str(k): v for k, v in config.id2label.items()},
            "max_length": int(tokenizer.model_max_length),
            "max_position_embeddings": config.max_position_embeddings,
        }
        (target / "sentiment_meta.json").write_text(json.dumps(meta))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(Path(args.out) / "gpu_train.jsonl", "a") as fh:
        fh.write(json.dumps(result) + "\n")
    print("TRAIN", json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
