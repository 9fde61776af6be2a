"""Where MLflow runs and models live, as the platform configures it.

Tracking store: ``mlflow.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else ``databricks`` inside a Databricks
runtime, else -- for a local run only -- a SQLite store under the project data dir. A cluster run with none of
these fails with one line: a store on one driver's disk would hide ``@champion`` from the next cluster.

Model registry: ``mlflow.registry_uri``, else ``$MLFLOW_REGISTRY_URI``, else MLflow's own default for the
tracking store (``databricks-uc`` -- Unity Catalog -- for a Databricks workspace, the tracking store otherwise).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import mlflow

from ..config.sections import MlflowSection
from ..core.errors import ConfigError
from ..core.paths import data_dir


def tracking_uri(section: MlflowSection | None = None, local: bool = True) -> str:
    """The tracking URI in force (see the module docstring for the order).

    Raises
    ------
    ConfigError
        ``local`` is False (a cluster run) and nothing names a tracking store.
    """
    if section is not None and section.tracking_uri:
        return section.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return "databricks"
    if not local:
        raise ConfigError(
            "mlflow.tracking_uri: not set and $MLFLOW_TRACKING_URI is empty; a cluster run needs a tracking "
            "server every run can reach (the SQLite fallback under the data dir is for local runs only)"
        )
    return f"sqlite:///{data_dir() / 'mlflow' / 'mlflow.db'}"


def registry_uri(section: MlflowSection | None, tracking: str) -> str:
    """The registry URI in force for the tracking store ``tracking``."""
    if section is not None and section.registry_uri:
        return section.registry_uri
    if os.environ.get("MLFLOW_REGISTRY_URI"):
        return os.environ["MLFLOW_REGISTRY_URI"]
    if tracking == "databricks" or tracking.startswith("databricks://"):
        return "databricks-uc" + tracking.removeprefix("databricks")  # MLflow 3's default: Unity Catalog
    return tracking


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


def configure(section: MlflowSection, local: bool = True) -> str:
    """Point MLflow at the stores and experiment named by ``section``; returns the experiment id.

    ``local`` says whether the run's Spark is a local JVM (see :func:`core.session.is_local`): only then may
    the SQLite fallback be used.
    """
    uri = tracking_uri(section, local)
    root = _local_artifact_root(uri)
    if root is not None:
        root.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    # set_registry_uri also exports $MLFLOW_REGISTRY_URI; keep the environment as the platform set it, so a
    # later run in this process (a notebook, a test session) resolves its own registry afresh.
    before = os.environ.get("MLFLOW_REGISTRY_URI")
    mlflow.set_registry_uri(registry_uri(section, uri))
    if before is None:
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    else:
        os.environ["MLFLOW_REGISTRY_URI"] = before
    try:
        experiment = mlflow.get_experiment_by_name(section.experiment)
    except mlflow.exceptions.MlflowException as exc:
        unusable = _unusable_store(uri, exc)
        if unusable is None:
            raise
        raise unusable from exc
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


# MLflow's codes for a server that answered "who are you" or "not you".
_REFUSED = {"UNAUTHENTICATED", "PERMISSION_DENIED"}


def _unusable_store(uri: str, exc: Exception) -> ConfigError | None:
    """One line for a tracking server that cannot be reached or refuses the credentials (the job's first
    request to it, before anything is written); ``None`` for any other failure. MLflow has already retried a
    refused or dropped connection (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``..._BACKOFF_FACTOR``; about four
    minutes with its defaults). The URI is named; the runner masks its credentials."""
    code = getattr(exc, "error_code", None)
    message = str(exc)
    if code in _REFUSED:
        return ConfigError(
            f"mlflow.tracking_uri: the tracking server {uri} refused the request ({code}); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) for a user it knows"
        )
    if urlparse(uri).scheme in ("http", "https") and "Max retries exceeded" in message:
        reason = re.search(r"\[Errno -?\d+\][^'\")]*|timed out|RemoteDisconnected[^'\")]*", message)
        detail = reason.group(0).strip() if reason else "no connection"
        return ConfigError(f"mlflow.tracking_uri: cannot reach the tracking server {uri}: {detail}")
    return None


def metric_name(name: str) -> str:
    """MLflow accepts only alphanumerics and ``_-. :/`` in metric names; column and source names may hold
    anything."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name)
