"""Evaluate the candidate (and the champion) on labeled reviews; promote the candidate if it wins.

    ./spark-submit.sh jobs/evaluate.py [--config conf/evaluate.yaml] [--set key=value ...]

Exit code: 0 promoted / evaluated / same version, 3 the candidate did not beat the champion, 2 bad input.
The last stdout line is the JSON summary (both metric sets and the decision).
"""

from __future__ import annotations

import sys
from pathlib import Path

from spark_sentiment.cli import run_job
from spark_sentiment.config.evaluate import EvaluateJobConfig


def main(config: EvaluateJobConfig) -> dict:
    from spark_sentiment.evaluation.job import evaluate_and_promote
    from spark_sentiment.session import get_spark

    spark = get_spark(config.spark.app_name, config.spark.conf)
    return evaluate_and_promote(spark, config)


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "conf" / "evaluate.yaml"
    sys.exit(run_job(sys.argv[1:], EvaluateJobConfig, default, main, "Champion/challenger evaluation."))
