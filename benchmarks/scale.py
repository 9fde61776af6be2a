"""Scale and memory of the native engine on Spark: rows/s and peak RSS by role as rows and partitions grow.

Two curves in one run, same model, same Spark session (``local[*]``), output to the ``noop`` sink:

* partitions: ``--partition-rows`` unsup reviews split into 1, 2, 4, 8 partitions, at ``--max-length``;
* rows: 2,000 / 10,000 / 50,000 unsup reviews at ``--rows-max-length`` (50,000 reviews at 512 tokens take
  ~25 min on 2 cores, so the rows curve defaults to 128 tokens; pass 512 to measure it there too).

Peak RSS is sampled every 0.2 s for the driver (this Python process), the executor JVM and each Python
worker. Model load and worker start-up are excluded (warm-up on a sample of every partition first).
Prints one table and saves JSON and CSV under ``benchmarks/results/``.

    .venv/bin/python benchmarks/scale.py --model-uri models:/SentimentAnalysis@champion
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from score_throughput import machine_info, spark_engine  # noqa: E402  (benchmarks/ is not a package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA", str(HERE.parent.parent / "shared/data/imdb")))
    parser.add_argument("--model-uri", default="models:/SentimentAnalysis@champion")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512, help="token limit of the partitions curve")
    parser.add_argument("--partition-rows", type=int, default=2000)
    parser.add_argument("--partitions", default="1,2,4,8")
    parser.add_argument("--rows", default="2000,10000,50000")
    parser.add_argument("--rows-max-length", type=int, default=128, help="token limit of the rows curve")
    parser.add_argument("--rows-partitions", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    from spark_sentiment.config.sections import MlflowSection
    from spark_sentiment.core.session import get_spark
    from spark_sentiment.inference.predictor import PredictorOptions
    from spark_sentiment.model import tracking

    tracking.configure(MlflowSection(experiment="benchmarks"))
    unsup = pd.read_parquet(Path(args.data) / "unsup.parquet", columns=["review_id", "text"])
    spark = get_spark("scale-benchmark", conf={"spark.ui.enabled": "false"})
    plan = [("partitions", args.partition_rows, int(p), args.max_length) for p in args.partitions.split(",") if p]
    plan += [("rows", int(n), args.rows_partitions, args.rows_max_length) for n in args.rows.split(",") if n]
    table = []
    for curve, rows, partitions, max_length in plan:
        if rows > len(unsup):
            raise ValueError(f"--rows {rows}: unsup.parquet has only {len(unsup)} reviews")
        df = spark.createDataFrame(unsup.head(rows)).repartition(partitions).cache()
        df.count()
        options = PredictorOptions(batch_size=args.batch_size, max_length=max_length, precision=args.precision)
        result = spark_engine(spark, "native", args.model_uri, df, options)
        df.unpersist()
        if len(result["labels"]) != rows:
            raise RuntimeError(f"{curve} run: {len(result['labels'])} labels for {rows} rows")
        row = {
            "curve": curve,
            "rows": rows,
            "partitions": partitions,
            "max_length": max_length,
            "seconds": round(result["seconds"], 1),
            "rows_per_s": round(rows / result["seconds"], 1),
            **{f"peak_{role}_mb": round(v / 2**20) for role, v in result["peaks"].items()},
        }
        table.append(row)
        print(json.dumps(row), flush=True)
    spark.stop()
    for curve in ("partitions", "rows"):
        first = next((r for r in table if r["curve"] == curve), None)
        for r in table:
            if first and r["curve"] == curve:
                r["ratio_to_first"] = round(r["rows_per_s"] / first["rows_per_s"], 2)
    machine = machine_info()
    print(f"\nnative engine, {args.precision}, batch {args.batch_size}, Spark local[*], {machine}")
    print("| curve | rows | partitions | max length | rows/s | x first | peak RSS MB driver / JVM / worker |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in table:
        print(
            f"| {r['curve']} | {r['rows']:,} | {r['partitions']} | {r['max_length']} | {r['rows_per_s']} | "
            f"{r['ratio_to_first']} | {r['peak_driver_mb']} / {r['peak_jvm_mb']} / {r['peak_worker_mb']} |"
        )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "scale.json").write_text(json.dumps({"machine": machine, "args": vars(args), "table": table}, indent=2))
    with open(out / "scale.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)


if __name__ == "__main__":
    main()
