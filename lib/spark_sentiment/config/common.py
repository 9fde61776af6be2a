"""Config sections shared by the jobs: MLflow and Spark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .loader import option, require


@dataclass
class MlflowSection:
    tracking_uri: Optional[str] = option(
        None,
        "MLflow tracking/registry URI. Unset: $MLFLOW_TRACKING_URI, else a local SQLite store under the data dir.",
    )
    experiment: str = option("sentiment-training", "MLflow experiment that receives the job's run.")

    def validate(self, prefix: str) -> None:
        require(bool(self.experiment.strip()), f"{prefix}experiment", "must not be empty")


@dataclass
class SparkSection:
    app_name: str = option("spark-sentiment", "Spark application name (kept if spark-submit already set one).")
    conf: dict[str, Any] = option({}, "Extra Spark confs, applied only where spark-submit/cluster set none.")
