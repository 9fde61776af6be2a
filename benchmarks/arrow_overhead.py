"""Spark-side cost of the native engine without the model: moving review text JVM -> Python -> JVM via Arrow.

Runs, on the same cached DataFrame of unlabeled reviews, (a) a plain Spark pass over the text column,
(b) an iterator pandas UDF that returns a constant ``struct<label, score>`` (Arrow both ways, Python
worker, no model), and (c) the same UDF that also tokenizes (fast tokenizer, truncation to 512). The
difference (b) - (a) is the per-row price of the Arrow round trip that the end-to-end estimate adds to the
model's own time.

    .venv/bin/python benchmarks/arrow_overhead.py --rows 50000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Iterator

import pandas as pd

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA", str(HERE.parent.parent / "shared/data/imdb")))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf
    from spark_sentiment.core.session import get_spark
    from spark_sentiment.inference.engines import RESULT_TYPE
    from spark_sentiment.model.base import embedded_model_dir

    spark = get_spark("arrow-overhead", conf={"spark.ui.enabled": "false"})
    reviews = pd.read_parquet(Path(args.data) / "unsup.parquet").head(args.rows)[["review_id", "text"]]
    df = spark.createDataFrame(reviews).repartition(spark.sparkContext.defaultParallelism).cache()
    df.count()
    tokenizer_dir = str(embedded_model_dir())

    @pandas_udf(RESULT_TYPE)
    def constant(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        for texts in batches:
            yield pd.DataFrame({"label": ["POSITIVE"] * len(texts), "score": [1.0] * len(texts)})

    @pandas_udf(RESULT_TYPE)
    def tokenize_only(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        for texts in batches:
            tokenizer(texts.fillna("").tolist(), truncation=True, max_length=512)
            yield pd.DataFrame({"label": ["POSITIVE"] * len(texts), "score": [1.0] * len(texts)})

    cases = {
        "plain Spark pass (length of text)": df.select(F.length("text").alias("x")),
        "pandas UDF, Arrow round trip, no model": df.select(constant("text").alias("x")),
        "pandas UDF + fast tokenizer (512)": df.select(tokenize_only("text").alias("x")),
    }
    table = []
    for name, frame in cases.items():
        frame.write.format("noop").mode("overwrite").save()  # warm-up: workers, imports
        best = min(_timed(frame) for _ in range(args.repeats))
        table.append({"what": name, "seconds": round(best, 3), "rows_per_s": round(args.rows / best)})
    base = table[0]["seconds"]
    for row in table:
        row["us_per_row_over_plain"] = round((row["seconds"] - base) / args.rows * 1e6, 1)
    from spark_sentiment.inference.precision import describe_cpu

    cpu = describe_cpu()
    partitions = spark.sparkContext.defaultParallelism
    print(f"\n{args.rows} unsup reviews, {partitions} partitions, best of {args.repeats}; CPU: {cpu}")
    print(f"{'what':<42} {'seconds':>8} {'rows/s':>9} {'us/row over plain':>18}")
    for row in table:
        print(f"{row['what']:<42} {row['seconds']:>8} {row['rows_per_s']:>9} {row['us_per_row_over_plain']:>18}")
    (HERE / "results").mkdir(exist_ok=True)
    record = {"cpu": cpu, "rows": args.rows, "table": table}
    (HERE / "results" / "arrow_overhead.json").write_text(json.dumps(record, indent=2))


def _timed(frame) -> float:
    started = time.perf_counter()
    frame.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
