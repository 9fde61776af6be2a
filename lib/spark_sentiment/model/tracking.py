"""MLflow tracking/registry location: ``mlflow.tracking_uri``, ``$MLFLOW_TRACKING_URI`` or an embedded SQLite store."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import mlflow

from ..config.sections import MlflowSection
from ..core.paths import data_dir


def tracking_uri(section: MlflowSection | None = None) -> str:
    """The URI in force: config, then ``$MLFLOW_TRACKING_URI``, then ``sqlite:///<data>/mlflow/mlflow.db``."""
    if section is not None and section.tracking_uri:
        return section.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{data_dir() / 'mlflow' / 'mlflow.db'}"


def _local_artifact_root(uri: str) -> Path | None:
    """Artifacts beside a local SQLite/file store (MLflow's own default, ./mlruns, depends on the cwd)."""
    parsed = urlparse(uri)
    # sqlite:////abs/path.db parses to path '//abs/path.db'; POSIX Path keeps a leading '//', so normalise.
    path = Path("/" + parsed.path.lstrip("/")) if parsed.path.startswith("/") else Path(parsed.path)
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/:memory:"):
        return path.resolve().parent / "artifacts"
    if parsed.scheme in ("", "file"):
        return path.resolve() / "artifacts"
    return None


def configure(section: MlflowSection) -> str:
    """Point MLflow at the store and experiment named by ``section``; returns the experiment id."""
    uri = tracking_uri(section)
    root = _local_artifact_root(uri)
    if root is not None:
        root.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.get_experiment_by_name(section.experiment)
    if experiment is None:
        location = (root / section.experiment).as_uri() if root is not None else None
        try:
            experiment_id = mlflow.create_experiment(section.experiment, artifact_location=location)
        except mlflow.exceptions.MlflowException:
            # Another job may have created it between our lookup and create; anything else re-raises.
            experiment = mlflow.get_experiment_by_name(section.experiment)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
