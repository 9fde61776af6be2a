"""GPU check of the native engine's executor side (no Spark needed: run it on any CUDA machine).

Measures, in one run over the same unlabeled reviews:

* ``seed``: the seed approach, ``pipeline(batch_size=8)`` on the GPU over a Python list;
* ``forward``: the bf16 forward pass alone on pre-tokenized, length-sorted batches of 256 (the ceiling);
* ``workers=N``: the exact code each Spark Python worker runs per Arrow batch
  (``cached_predictor(...).predict(series)``), driven by N processes feeding one GPU, each tokenizing on
  its own CPU core with its own model copy, batches of ``--arrow-batch`` rows (Spark's
  ``maxRecordsPerBatch``); model load and warm-up are excluded, the clock runs from a shared barrier
  until the last worker finishes;
* label agreement of the bf16 worker path with fp32 on the same rows.

    python benchmarks/gpu_check.py --model-dir PACKAGE --data unsup.parquet --rows 20000 --out results/

``PACKAGE`` is a native-engine model package (``model/``, ``tokenizer/``, ``sentiment_meta.json``), e.g.
``data/model_cache/SentimentAnalysis_1-<hash>`` after a scoring run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _worker(rank, model_dir, texts, arrow_batch, options_kw, barrier, queue):
    import torch
    from spark_sentiment.inference.predictor import PredictorOptions, cached_predictor

    torch.set_num_threads(1)  # one CPU core per worker, as with spark.task.cpus=1
    predictor = cached_predictor(model_dir, PredictorOptions(**options_kw), None)
    predictor.predict(pd.Series(texts[:256]))  # warm-up: kernels, allocator
    sync()
    barrier.wait()
    started = time.perf_counter()
    labels = []
    for start in range(0, len(texts), arrow_batch):
        labels.extend(predictor.predict(pd.Series(texts[start : start + arrow_batch]))["label"].tolist())
    sync()
    queue.put((rank, started, time.perf_counter(), labels))


def run_workers(
    model_dir: str, texts: list[str], workers: int, arrow_batch: int, options_kw: dict
) -> tuple[float, list]:
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    shares = np.array_split(np.arange(len(texts)), workers)
    procs = [
        ctx.Process(
            target=_worker, args=(r, model_dir, [texts[i] for i in share], arrow_batch, options_kw, barrier, queue)
        )
        for r, share in enumerate(shares)
    ]
    for p in procs:
        p.start()
    results = sorted(queue.get() for _ in procs)
    for p in procs:
        p.join()
    wall = max(r[2] for r in results) - min(r[1] for r in results)
    return wall, [label for r in results for label in r[3]]


def seed_pipeline(model_dir: Path, texts: list[str], device: str) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(model_dir / "model", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir / "tokenizer")
    pipe = pipeline(
        "text-classification",
        model=model,
        tokenizer=tokenizer,
        device=torch.device(device),
        batch_size=8,
        truncation=True,
    )
    pipe(texts[:64])
    sync()
    started = time.perf_counter()
    pipe(texts)
    sync()
    return len(texts) / (time.perf_counter() - started)


def pretokenized_forward(model_dir: Path, texts: list[str], device: str, batch: int = 256) -> float:
    import torch
    from spark_sentiment.inference.predictor import Predictor, PredictorOptions

    predictor = Predictor(model_dir, PredictorOptions(batch_size=batch, device=device, precision="bf16"))
    ids = predictor.tokenize(texts)
    lengths = np.array([len(t) for t in ids])
    order = np.argsort(lengths)
    tensors = []
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        width = lengths[chunk].max()
        arr = np.full((len(chunk), width), predictor.pad_id, dtype=np.int64)
        for row, i in enumerate(chunk):
            arr[row, : lengths[i]] = ids[i]
        mask = (np.arange(width)[None, :] < lengths[chunk][:, None]).astype(np.int64)
        tensors.append((torch.from_numpy(arr).to(device), torch.from_numpy(mask).to(device)))
    with torch.inference_mode():  # the predictor holds its weights in bf16 on CPU and GPU alike
        for a, m in tensors[:2]:
            predictor.model(input_ids=a, attention_mask=m)
        sync()
        started = time.perf_counter()
        for a, m in tensors:
            predictor.model(input_ids=a, attention_mask=m).logits.argmax(-1)
        sync()
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--data", required=True, help="parquet with a text column (IMDB unsup)")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--seed-rows", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--arrow-batch", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=65536)
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    import torch

    texts = pd.read_parquet(args.data)["text"].head(args.rows).tolist()
    model_dir = Path(args.model_dir)
    table = []
    seed_rate = seed_pipeline(model_dir, texts[: args.seed_rows], args.device)
    table.append({"what": "seed pipeline(batch_size=8), fp32", "rows_per_s": seed_rate})
    forward_rate = pretokenized_forward(model_dir, texts, args.device)
    table.append({"what": "bf16 forward, pre-tokenized, sorted, batch 256", "rows_per_s": forward_rate})

    options = {"batch_size": args.batch_size, "max_tokens": args.max_tokens, "device": args.device, "precision": "bf16"}
    _, fp32_labels = run_workers(str(model_dir), texts, 1, args.arrow_batch, {**options, "precision": "fp32"})
    for n in [int(x) for x in args.workers.split(",")]:
        wall, labels = run_workers(str(model_dir), texts, n, args.arrow_batch, options)
        agree = float(np.mean([a == b for a, b in zip(labels, fp32_labels, strict=True)]))
        table.append(
            {
                "what": f"native UDF code, {n} worker(s), bf16",
                "rows_per_s": len(texts) / wall,
                "agreement_vs_fp32": agree,
            }
        )
    for row in table:
        row["x_seed"] = row["rows_per_s"] / seed_rate
        row["of_forward"] = row["rows_per_s"] / forward_rate
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (cpu smoke run)"
    from spark_sentiment.inference.precision import describe_cpu

    machine = {
        "gpu": gpu,
        "cpu": describe_cpu(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "rows": len(texts),
        "arrow_batch": args.arrow_batch,
        "batch_size": args.batch_size,
        "max_tokens": args.max_tokens,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_check.json").write_text(json.dumps({"machine": machine, "table": table}, indent=2))
    print(f"\n{machine}")
    print(f"{'what':<50} {'rows/s':>9} {'x seed':>7} {'of fwd':>7} {'agree':>7}")
    for row in table:
        agree = f"{row['agreement_vs_fp32']:.4f}" if "agreement_vs_fp32" in row else ""
        print(f"{row['what']:<50} {row['rows_per_s']:>9.0f} {row['x_seed']:>7.1f} {row['of_forward']:>7.2f} {agree:>7}")


if __name__ == "__main__":
    main()
