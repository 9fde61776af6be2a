"""GPU training check: our Trainer (``training.arguments.build_trainer``) on a bare CUDA box (no Spark, no MLflow).

Runs several training variants in one process over the same tokenized data and prints one table: training
seconds (``trainer.train()``, per-epoch evaluation included), rows/s, eval accuracy/F1 on the eval rows and
accuracy on the whole test split.

Data comes from Parquet files (``--train/--eval/--test``, columns text and label) or from a bundle made
by ``benchmarks/gpu_bundle.py`` (xz-compressed texts that fit the 64 MiB a device call may carry).

    python benchmarks/gpu_train.py --base BASE_DIR --bundle BUNDLE \\
        --variant seed:rows=seed \\
        --variant full-b128:rows=full,train.batch_size=128,train.learning_rate=2e-4,train.group_by_length=true
"""

from __future__ import annotations

import argparse
import json
import lzma
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))


class Encoded:
    """A list-backed dataset of token ids and labels (what DataCollatorWithPadding pads per batch)."""

    def __init__(self, ids: list[list[int]], labels: list[int]) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "attention_mask": [1] * len(self.ids[i]), "labels": self.labels[i]}

    def subset(self, index) -> Encoded:
        return Encoded([self.ids[i] for i in index], [self.labels[i] for i in index])


def load_splits(args) -> dict[str, pd.DataFrame]:
    """train (all rows), seed_train, eval and test frames with text/label columns."""
    if args.bundle:
        bundle = Path(args.bundle)
        arrays = np.load(bundle / "labels.npz")
        frames = {}
        for split in ("train", "test"):
            texts = lzma.decompress((bundle / f"{split}.txt.xz").read_bytes()).decode().split("\x00")
            frames[split] = pd.DataFrame({"text": texts, "label": arrays[f"{split}_labels"].astype(int)})
        frames["seed_train"] = frames["train"].iloc[arrays["train3k_index"]].reset_index(drop=True)
        frames["eval"] = frames["test"].iloc[arrays["eval300_index"]].reset_index(drop=True)
        return frames
    frames = {k: pd.read_parquet(getattr(args, k), columns=["text", "label"]) for k in ("train", "eval", "test")}
    seed_rows = min(3000, len(frames["train"]))
    frames["seed_train"] = frames["train"].sample(n=seed_rows, random_state=42).reset_index(drop=True)
    return frames


def parse_variant(spec: str) -> tuple[str, str, list[str]]:
    name, _, rest = spec.partition(":")
    rows, overrides = "full", []
    for item in filter(None, rest.split(",")):
        if item.startswith("rows="):
            rows = item.split("=", 1)[1]
        else:
            overrides.append(item)
    if rows not in ("seed", "full"):
        raise ValueError(f"--variant {spec!r}: rows must be seed or full, got {rows!r}")
    return name, rows, overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="base encoder folder (weights + tokenizer)")
    parser.add_argument("--bundle", help="folder made by benchmarks/gpu_bundle.py (instead of the three Parquets)")
    parser.add_argument("--train")
    parser.add_argument("--eval")
    parser.add_argument("--test")
    parser.add_argument("--variant", action="append", default=[], help="NAME:rows=seed|full,train.KEY=VALUE,...")
    parser.add_argument("--test-batch", type=int, default=256)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    if not args.bundle and not (args.train and args.eval and args.test):
        parser.error("give --bundle or all of --train, --eval, --test")

    import torch
    import transformers
    from spark_sentiment.config import load_config
    from spark_sentiment.model.base import load_base
    from spark_sentiment.training.arguments import build_trainer
    from spark_sentiment.training.config import TrainJobConfig

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from spark_sentiment.inference.precision import describe_cpu

    machine = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu": describe_cpu(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    started = time.perf_counter()
    frames = load_splits(args)
    _, tokenizer = load_base(args.base, ["NEGATIVE", "POSITIVE"], 512)
    encoded = {}
    for split, frame in frames.items():
        ids = tokenizer(frame["text"].tolist(), truncation=True, max_length=512)["input_ids"]
        encoded[split] = Encoded(ids, frame["label"].astype(int).tolist())
    prep_seconds = time.perf_counter() - started
    print(f"data + tokenization: {prep_seconds:.1f} s { ({k: len(v) for k, v in encoded.items()}) }", flush=True)
    # the test split sorted by length: prediction pads little; labels travel with the rows
    test_order = np.argsort([len(x) for x in encoded["test"].ids], kind="stable")
    test = encoded["test"].subset(test_order)

    results = []
    for spec in args.variant:
        name, rows, overrides = parse_variant(spec)
        base_overrides = [f"model.base={args.base}", f"train.eval_batch_size={args.test_batch}"]
        cfg = load_config(TrainJobConfig, None, [*base_overrides, *overrides])
        t0 = time.perf_counter()
        model, _ = load_base(args.base, cfg.model.labels, cfg.train.max_length, cfg.train.seed)
        model = model.float()  # the carried base may be fp16; train fp32 master weights under bf16 autocast
        train = encoded["seed_train" if rows == "seed" else "train"]
        with tempfile.TemporaryDirectory() as tmp:
            trainer = build_trainer(cfg.train, model, tokenizer, train, encoded["eval"], tmp, report_to=[])
            sync()
            t_train = time.perf_counter()
            trainer.train()
            sync()
            train_seconds = time.perf_counter() - t_train
            final = trainer.evaluate()
            t_test = time.perf_counter()
            prediction = trainer.predict(test)
            test_seconds = time.perf_counter() - t_test
        # label_ids, not test.labels: with group_by_length the Trainer's eval sampler reorders rows too
        accuracy = float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())
        result = {
            "name": name,
            "train_rows": len(train),
            "epochs": cfg.train.epochs,
            "batch_size": cfg.train.batch_size,
            "learning_rate": cfg.train.learning_rate,
            "group_by_length": cfg.train.group_by_length,
            "optim": cfg.train.optim,
            "dataloader_workers": cfg.train.dataloader_workers,
            "pad_to_multiple_of": cfg.train.pad_to_multiple_of,
            "train_seconds": round(train_seconds, 1),
            "rows_per_s": round(len(train) * cfg.train.epochs / train_seconds, 1),
            "load_train_eval_seconds": round(time.perf_counter() - t0 - test_seconds, 1),
            "eval_accuracy": round(final["eval_accuracy"], 4),
            "eval_f1": round(final["eval_f1"], 4),
            "eval_rows": len(encoded["eval"]),
            "test_accuracy": round(accuracy, 4),
            "test_rows": len(test),
            "test_predict_seconds": round(test_seconds, 1),
            **machine,
        }
        results.append(result)
        print("TRAIN", json.dumps(result), flush=True)
        with open(out / "gpu_train.jsonl", "a") as fh:
            fh.write(json.dumps(result) + "\n")
        del trainer, model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    print(
        f"\n{machine['gpu']}, torch {machine['torch']}, transformers {machine['transformers']}; "
        f"data + tokenization {prep_seconds:.1f} s"
    )
    print("| variant | rows x epochs | batch | lr | train s | rows/s | eval acc (F1) | test acc (rows) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['name']} | {r['train_rows']} x {r['epochs']} | {r['batch_size']} | "
            f"{r['learning_rate']} | {r['train_seconds']} | {r['rows_per_s']} | "
            f"{r.get('eval_accuracy', '')} ({r.get('eval_f1', '')}) | {r.get('test_accuracy', '')} "
            f"({r.get('test_rows', '')}) |"
        )


if __name__ == "__main__":
    main()
