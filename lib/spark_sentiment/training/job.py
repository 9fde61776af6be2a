"""The training job's entry point: ``jobs/train.py`` and ``python -m spark_sentiment.training.job``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from ..config.cli import packaged_config, run_job
from .config import TrainJobConfig

DESCRIPTION = "Fine-tune and register a sentiment model."


def run(config: TrainJobConfig) -> dict[str, Any]:
    """Resolve the data (a missing path fails before any training), then train, log and register; the
    summary also goes where ``report`` says."""
    from ..core.session import get_spark
    from ..io.results import check_places, publish
    from .data import plan_sources
    from .trainer import train_and_register

    spark = get_spark(config.spark.app_name, config.spark.conf)
    check_places(spark, config.report)
    plan = plan_sources(spark, config.data)
    summary = train_and_register(spark, config, plan)
    publish(spark, config.report, "train", summary)
    return summary


def main(argv: Sequence[str] | None = None, *, default_config: Path | None = None) -> int:
    """Parse ``--config``/``--set``, run, print the JSON summary as the last stdout line; exit 2 on bad input."""
    return run_job(sys.argv[1:] if argv is None else argv, TrainJobConfig, default_config, run, DESCRIPTION)


def cli() -> int:
    """Console entry point ``spark-sentiment-train`` (also ``jobs/train.py``): ``main`` with the packaged
    ``train.yaml`` as the default config."""
    return main(default_config=packaged_config("train.yaml"))


if __name__ == "__main__":
    sys.exit(cli())
