"""MLflow's process-wide tracking and registry URIs, put back after a block that points them elsewhere."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import mlflow


@contextlib.contextmanager
def mlflow_uris_restored() -> Iterator[None]:
    """The tracking and registry URIs as they were before the block. ``mlflow.set_registry_uri`` also exports
    ``$MLFLOW_REGISTRY_URI``, which the jobs read first: that variable is left as it was too."""
    uris, registry_env = (mlflow.get_tracking_uri(), mlflow.get_registry_uri()), os.environ.get("MLFLOW_REGISTRY_URI")
    try:
        yield
    finally:
        mlflow.set_tracking_uri(uris[0])
        mlflow.set_registry_uri(uris[1])
        if registry_env is None:
            os.environ.pop("MLFLOW_REGISTRY_URI", None)
        else:
            os.environ["MLFLOW_REGISTRY_URI"] = registry_env
