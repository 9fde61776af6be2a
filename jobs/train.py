"""Fine-tune a sentiment classifier and register it in MLflow.

    ./spark-submit.sh jobs/train.py [--config conf/train.yaml] [--set key=value ...]

The last stdout line is the JSON summary (run_id, model_uri, aliases, metrics, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

from spark_sentiment.cli import run_job
from spark_sentiment.config.train import TrainJobConfig


def main(config: TrainJobConfig) -> dict:
    # Imported here so --help and config errors answer before torch/Spark load.
    from spark_sentiment.data.labeled import plan_sources
    from spark_sentiment.session import get_spark
    from spark_sentiment.training.trainer import train_and_register

    plan = plan_sources(config.data)  # a missing path fails before Spark starts
    spark = get_spark(config.spark.app_name, config.spark.conf)
    return train_and_register(spark, config, plan)


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "conf" / "train.yaml"
    sys.exit(run_job(sys.argv[1:], TrainJobConfig, default, main, "Fine-tune and register a sentiment model."))
