"""Label review columns of a Delta table with a registered model and write a Delta table.

    ./spark-submit.sh jobs/score.py [--config conf/score.yaml] [--set key=value ...]

The last stdout line is the JSON run summary (rows, label counts, model version, rows/s, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

from spark_sentiment.cli import run_job
from spark_sentiment.config.score import ScoreJobConfig


def main(config: ScoreJobConfig) -> dict:
    from spark_sentiment.scoring.job import score_table
    from spark_sentiment.session import get_spark

    spark = get_spark(config.spark.app_name, config.spark.conf)
    return score_table(spark, config)


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "conf" / "score.yaml"
    sys.exit(run_job(sys.argv[1:], ScoreJobConfig, default, main, "Label review text in a Delta table."))
