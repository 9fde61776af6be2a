"""CPU precision check of the native engine's executor code: fp32 vs bf16 weights, same rows, one run.

Drives ``Predictor.predict`` (the code a Spark Python worker runs per Arrow batch) on labeled IMDB test
reviews, so it reports rows/s, label agreement with fp32 and accuracy for each precision.

    .venv/bin/python benchmarks/cpu_precision.py --model-dir data/model_cache/<model>-<hash> --rows 400
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA", str(HERE.parent.parent / "shared/data/imdb")))
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    from spark_sentiment.inference.precision import describe_cpu
    from spark_sentiment.inference.predictor import Predictor, PredictorOptions

    frame = pd.read_parquet(Path(args.data) / "test.parquet").sample(n=args.rows, random_state=0)
    texts, truth = frame["text"].reset_index(drop=True), frame["label"].to_numpy()
    rows, reference = [], None
    for precision in ("fp32", "bf16"):
        options = PredictorOptions(
            batch_size=args.batch_size,
            max_length=args.max_length,
            threads=args.threads,
            device="cpu",
            precision=precision,
        )
        predictor = Predictor(args.model_dir, options)
        predictor.predict(texts.head(args.batch_size))  # warm-up
        started = time.perf_counter()
        out = predictor.predict(texts)
        seconds = time.perf_counter() - started
        ids = out["label"].map({v: k for k, v in predictor.id2label.items()}).to_numpy()
        reference = ids if reference is None else reference
        rows.append(
            {
                "precision": precision,
                "rows_per_s": round(args.rows / seconds, 1),
                "agreement_vs_fp32": round(float((ids == reference).mean()), 4),
                "accuracy": round(float((ids == truth).mean()), 4),
            }
        )
    print(
        f"\n{args.rows} IMDB test reviews, max length {args.max_length}, batch {args.batch_size}, "
        f"{args.threads} torch threads, one process; CPU: {describe_cpu()}"
    )
    print(f"{'precision':<10} {'rows/s':>8} {'agree':>7} {'accuracy':>9}")
    for r in rows:
        print(f"{r['precision']:<10} {r['rows_per_s']:>8} {r['agreement_vs_fp32']:>7} {r['accuracy']:>9}")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    record = {"cpu": describe_cpu(), "args": vars(args), "table": rows}
    (out_dir / "cpu_precision.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
