"""What progress costs: the scoring job's ``score_rows`` with progress lines on and off, same rows, one run.

With progress on, the input is first cached and counted (rows to score known), workers send the texts
they have done to the driver over UDP while tasks run, and the driver polls Spark's status tracker; off,
none of that happens. Runs alternate (off, on, off, on, ...) after a warm-up that starts the Python workers
and loads the model, so both sides see the same warm workers. Prints one table with the CPU.

    .venv/bin/python benchmarks/progress_overhead.py --rows 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA", str(HERE.parent.parent / "shared/data/imdb")))
    parser.add_argument("--model-uri", default="models:/SentimentAnalysis@champion")
    parser.add_argument("--profile", default="fast", help="score.profile (fast: 256 tokens, quicker runs)")
    parser.add_argument("--interval", type=float, default=5.0, help="progress_seconds when on")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from score_throughput import machine_info
    from spark_sentiment.config.sections import MlflowSection, ScoreSection
    from spark_sentiment.core.session import get_spark
    from spark_sentiment.inference.engines import scoring_function
    from spark_sentiment.inference.predictor import PredictorOptions
    from spark_sentiment.model import tracking
    from spark_sentiment.model.registry import resolve_model
    from spark_sentiment.scoring.rows import score_rows

    tracking.configure(MlflowSection(experiment="benchmarks"))
    spark = get_spark("progress-overhead", conf={"spark.ui.enabled": "false"})
    reviews = pd.read_parquet(f"{args.data.rstrip('/')}/unsup.parquet").head(args.rows)[["review_id", "text"]]
    df = spark.createDataFrame(reviews).cache()
    df.count()
    resolved = resolve_model(args.model_uri)
    score = scoring_function(spark, resolved, "native", PredictorOptions.of(ScoreSection(profile=args.profile)))
    score_rows(df.limit(64), score, resolved.label, ["text"], None)  # warm-up: workers, model, precision probe

    runs: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.repeats):
        for side, interval in (("off", 0.0), ("on", args.interval)):
            started = time.perf_counter()
            scored, stats = score_rows(df, score, resolved.label, ["text"], None, interval, "benchmark")
            runs[side].append(args.rows / (time.perf_counter() - started))
            if stats.rows != args.rows:
                raise SystemExit(f"{side}: scored {stats.rows} rows, expected {args.rows}")
    machine = machine_info()
    best = {side: max(rates) for side, rates in runs.items()}
    overhead = 1 - best["on"] / best["off"]
    print(f"\n{args.rows} unsup reviews, profile {args.profile}, {resolved.label}, progress every {args.interval} s")
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores")
    print("| progress | rows/s per run | best |")
    print("|---|---|---:|")
    for side, rates in runs.items():
        print(f"| {side} | {', '.join(f'{r:.1f}' for r in rates)} | {best[side]:.1f} |")
    print(f"overhead (best on vs best off): {overhead:.1%}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    record = {"machine": machine, "args": vars(args), "runs": runs, "overhead": round(overhead, 4)}
    (out / "progress_overhead.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
