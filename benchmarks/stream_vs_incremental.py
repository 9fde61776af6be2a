"""Streaming scoring (``output.mode: stream``, availableNow) beside the batch ``incremental`` mode, on the
same input in one process: a first run over N reviews, then a run over M appended reviews, each mode into
its own output. Rows/s are the job's own (rows scored / the job's seconds, model resolution and writes
included); the order alternates (incremental first, then stream first) so neither always runs warm.

    .venv/bin/python benchmarks/stream_vs_incremental.py --rows 600 --appended 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--appended", type=int, default=200)
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA", str(HERE.parent.parent / "shared/data/imdb")))
    parser.add_argument("--model-uri", default="models:/SentimentAnalysis@champion")
    parser.add_argument("--profile", default="fast")
    args = parser.parse_args()

    from score_throughput import machine_info
    from spark_sentiment.config import load_config
    from spark_sentiment.core.session import get_spark
    from spark_sentiment.scoring.config import ScoreJobConfig
    from spark_sentiment.scoring.job import score_table

    spark = get_spark("stream-vs-incremental", conf={"spark.ui.enabled": "false"})
    reviews = pd.read_parquet(f"{args.data.rstrip('/')}/unsup.parquet").head(args.rows + args.appended)
    reviews = reviews[["review_id", "text"]]
    tmp = tempfile.mkdtemp(prefix="stream-bench-")
    source = f"{tmp}/reviews"
    spark.createDataFrame(reviews.head(args.rows)).write.format("delta").save(source)
    spark.sql(f"ALTER TABLE delta.`{source}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    common = [f"input.path={source}", "input.key_columns=[review_id]", f"model.uri={args.model_uri}"]
    common += [f"score.profile={args.profile}", "progress_seconds=0"]
    modes = {
        "incremental": [f"output.path={tmp}/incremental", "output.mode=incremental"],
        "stream": [f"output.path={tmp}/stream", "output.mode=stream", f"stream.checkpoint={tmp}/checkpoint"],
    }
    # warm-up: Python workers started, the model shipped, loaded and its precision probed, so neither mode
    # pays for that in the table
    spark.createDataFrame(reviews.tail(32)).write.format("delta").save(f"{tmp}/warm_reviews")
    warm = [f"input.path={tmp}/warm_reviews", f"output.path={tmp}/warm", *common[2:]]
    score_table(spark, load_config(ScoreJobConfig, None, warm))
    table = []
    for run, order in (("first", ["incremental", "stream"]), ("appended", ["stream", "incremental"])):
        if run == "appended":
            spark.createDataFrame(reviews.iloc[args.rows :]).write.format("delta").mode("append").save(source)
        for mode in order:
            summary = score_table(spark, load_config(ScoreJobConfig, None, common + modes[mode]))
            table.append(
                {
                    "run": run,
                    "mode": mode,
                    "rows": summary.rows_in,
                    "seconds": summary.seconds,
                    "rows_per_s": summary.rows_per_second,
                    "method": summary.method or (summary.stream or {}).get("trigger"),
                }
            )
            print("STREAM_BENCH", json.dumps(table[-1]), flush=True)
    machine = machine_info()
    print(f"\n{args.rows} + {args.appended} unsup reviews, profile {args.profile}, {args.model_uri}")
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores")
    print("| run | mode | rows | seconds | rows/s |")
    print("|---|---|---:|---:|---:|")
    for row in table:
        print(f"| {row['run']} | {row['mode']} | {row['rows']} | {row['seconds']} | {row['rows_per_s']} |")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "stream_vs_incremental.json").write_text(json.dumps({"machine": machine, "table": table}, indent=2))


if __name__ == "__main__":
    main()
