"""Scoring throughput on the same N unlabeled IMDB reviews, in one run:

(a) the seed approach: one process, ``pipeline(batch_size=8)`` over a Python list;
(b) the ``mlflow`` engine (``mlflow.pyfunc.spark_udf``) on Spark;
(c) the ``native`` engine (our iterator pandas UDF) on Spark.

Model loading and Python-worker start-up are excluded for all three (each is warmed up on a few rows
first). Spark runs write to the ``noop`` sink, so the table measures scoring, not Delta I/O.
Prints one table and saves it as JSON next to this file (``results/``).

    .venv/bin/python benchmarks/score_throughput.py --rows 2000 --model-uri models:/SentimentAnalysis@champion
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

HERE = Path(__file__).resolve().parent


class PeakRss:
    """Samples RSS of this process and all its descendants; peaks by role (driver, JVM, Python workers)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peaks, self._stop = interval, {"driver": 0, "jvm": 0, "worker": 0}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.peaks["driver"] = max(self.peaks["driver"], me.memory_info().rss)
            for child in me.children(recursive=True):
                try:  # one process ending mid-sample must not hide the others
                    role = "jvm" if "java" in " ".join(child.cmdline()[:3]) else "worker"
                    self.peaks[role] = max(self.peaks[role], child.memory_info().rss)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def machine_info() -> dict:
    """What every benchmark table records about the machine it ran on: the CPU model with the features
    that decide reduced-precision speed (AVX512-BF16, AMX, VNNI), cores, memory."""
    from spark_sentiment.inference.precision import describe_cpu

    return {
        "cpu": describe_cpu(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "python": platform.python_version(),
    }


def seed_approach(model_uri: str, texts: list[str], max_length: int | None = None) -> dict:
    """Run in a child process so its peak RSS is its own."""
    code = f"""
import json, resource, sys, time, mlflow
texts = json.load(sys.stdin)
pipe = mlflow.transformers.load_model({model_uri!r}, truncation=True)
pipe.tokenizer.model_max_length = {max_length} or min(pipe.tokenizer.model_max_length, 512)
pipe(texts[:8], batch_size=8)  # warm-up
started = time.perf_counter()
out = pipe(texts, batch_size=8)
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "labels": [o["label"] for o in out],
                   "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(texts), capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def spark_engine(spark, engine: str, model_uri: str, df, options) -> dict:
    """Score ``df`` (columns review_id, text) with one engine; model load and worker start-up excluded."""
    from spark_sentiment.inference.columns import add_sentiment_columns
    from spark_sentiment.model.registry import resolve_model

    resolved = resolve_model(model_uri)
    # Warm-up on a few rows of every partition, so each Python worker has started and loaded its model.
    warm = df.sample(fraction=min(1.0, 16 * df.rdd.getNumPartitions() / max(df.count(), 1)), seed=1)
    add_sentiment_columns(spark, warm, resolved, ["text"], engine, options).write.format("noop").mode(
        "overwrite"
    ).save()
    scored = add_sentiment_columns(spark, df, resolved, ["text"], engine, options)
    with PeakRss() as peaks:
        started = time.perf_counter()
        rows = scored.select("review_id", "text_sentiment").collect()
        seconds = time.perf_counter() - started
    labels = dict((r["review_id"], r["text_sentiment"]) for r in rows)
    return {"seconds": seconds, "labels": labels, "peaks": peaks.peaks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA", str(HERE.parent.parent / "shared/data/imdb")))
    parser.add_argument("--model-uri", default="models:/SentimentAnalysis@champion")
    parser.add_argument("--partitions", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, help="token limit for seed and native (default: the model's)")
    parser.add_argument("--precision", default="auto", help="native engine precision: auto (fp32 on CPU) or bf16")
    parser.add_argument("--engines", default="mlflow,native", help="Spark engines to run beside the seed")
    args = parser.parse_args()
    from spark_sentiment.inference.predictor import PredictorOptions

    options = PredictorOptions(batch_size=args.batch_size, max_length=args.max_length, precision=args.precision)

    from spark_sentiment.config.sections import MlflowSection
    from spark_sentiment.core.session import get_spark
    from spark_sentiment.model import tracking

    tracking.configure(MlflowSection(experiment="benchmarks"))
    reviews = pd.read_parquet(Path(args.data) / "unsup.parquet").head(args.rows)[["review_id", "text"]]
    texts = reviews["text"].tolist()

    seed = seed_approach(args.model_uri, texts, args.max_length)
    spark = get_spark("score-throughput", conf={"spark.ui.enabled": "false"})
    df = spark.createDataFrame(reviews).repartition(args.partitions).cache()
    df.count()
    results = {name: spark_engine(spark, name, args.model_uri, df, options) for name in args.engines.split(",")}
    seed_labels = dict(zip(reviews["review_id"], seed["labels"], strict=True))

    base = args.rows / seed["seconds"]
    table = [
        {
            "approach": "seed pipeline(batch_size=8), 1 process",
            "rows_per_s": round(base, 1),
            "ratio": 1.0,
            "peak_rss_mb": round(seed["peak_rss"] / 2**20),
            "label_agreement": 1.0,
        }
    ]
    for name, res in results.items():
        rate = args.rows / res["seconds"]
        agree = sum(seed_labels[k] == v for k, v in res["labels"].items()) / len(res["labels"])
        table.append(
            {
                "approach": f"{name} engine, {args.partitions} partitions"
                + (f", {args.precision}" if name == "native" else ""),
                "rows_per_s": round(rate, 1),
                "ratio": round(rate / base, 2),
                "peak_rss_mb": {k: round(v / 2**20) for k, v in res["peaks"].items()},
                "label_agreement": round(agree, 4),
            }
        )
    machine = machine_info()
    print(f"\nScoring {args.rows} unsup reviews, {args.model_uri}, max length {args.max_length or 'model'}, {machine}")
    print(f"{'approach':<48} {'rows/s':>8} {'x seed':>7}  peak RSS MB (driver/jvm/worker)   agreement")
    for row in table:
        rss = row["peak_rss_mb"]
        rss_text = str(rss) if isinstance(rss, int) else f"{rss['driver']}/{rss['jvm']}/{rss['worker']}"
        print(
            f"{row['approach']:<48} {row['rows_per_s']:>8} {row['ratio']:>7}  {rss_text:<32} {row['label_agreement']}"
        )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    name = "score_throughput.json" if args.max_length is None else f"score_throughput_len{args.max_length}.json"
    (out / name).write_text(json.dumps({"machine": machine, "args": vars(args), "table": table}, indent=2))


if __name__ == "__main__":
    main()
