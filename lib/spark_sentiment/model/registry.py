"""MLflow Model Registry: aliases after registration, and resolving any model URI to a concrete version."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..errors import ModelError

CHAMPION = "champion"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?$")


@dataclass(frozen=True)
class ResolvedModel:
    """A model pinned to one artifact set; ``label`` is recorded beside every prediction."""

    requested: str
    uri: str  # concrete: models:/Name/<version>, models:/m-<id>, runs:/... or a local path
    name: str | None = None
    version: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}" if self.name and self.version else self.uri


def set_aliases(name: str, version: str, alias: str, champion_if_missing: bool) -> list[str]:
    """Give ``version`` the alias ``alias``, and ``champion`` too when the model has no champion yet."""
    client = MlflowClient()
    client.set_registered_model_alias(name, alias, version)
    aliases = [alias]
    if champion_if_missing and alias != CHAMPION:
        current = client.get_registered_model(name).aliases
        if CHAMPION not in current:
            client.set_registered_model_alias(name, CHAMPION, version)
            aliases.append(CHAMPION)
    return aliases


def _check_name(name: str, uri: str) -> None:
    if "'" in name or "\\" in name:
        raise ModelError(f"model URI {uri}: invalid registered model name {name!r}")


def resolve_model(uri: str) -> ResolvedModel:
    """Resolve ``uri`` once, on the driver, to a concrete version.

    Accepts ``models:/Name@alias``, ``models:/Name/<version>``, ``models:/Name/latest``, ``models:/m-<id>``,
    ``runs:/<run_id>/<path>`` and local model folders.

    Raises
    ------
    ModelError
        The model, version, alias, run or path does not exist (message names the URI).
    """
    client = MlflowClient()
    match = _MODELS_URI.match(uri)
    try:
        if match and match.group("name").startswith("m-") and not (match.group("alias") or match.group("version")):
            mlflow.get_logged_model(match.group("name"))
            return ResolvedModel(uri, uri)
        if match:
            name, alias, version = match.group("name"), match.group("alias"), match.group("version")
            _check_name(name, uri)
            if alias:
                found = client.get_model_version_by_alias(name, alias)
            elif version is None or version == "latest":
                versions = client.search_model_versions(f"name = '{name}'")
                if not versions:
                    raise ModelError(f"model URI {uri}: registered model {name!r} has no versions")
                found = max(versions, key=lambda v: int(v.version))
            elif version.isdigit():
                found = client.get_model_version(name, version)
            else:
                raise ModelError(f"model URI {uri}: version must be a number, 'latest' or @alias")
            return ResolvedModel(uri, f"models:/{name}/{found.version}", name, str(found.version))
        if uri.startswith("runs:/"):
            run_id = uri.removeprefix("runs:/").split("/", 1)[0]
            client.get_run(run_id)
            return ResolvedModel(uri, uri)
    except MlflowException as exc:
        raise ModelError(f"model URI {uri} cannot be resolved: {exc.message.splitlines()[0]}") from exc
    if "://" in uri or uri.startswith("models:"):
        raise ModelError(f"model URI {uri}: unsupported scheme (use models:/, runs:/ or a local path)")
    path = Path(uri).expanduser()
    if not (path / "MLmodel").is_file():
        raise ModelError(f"model URI {uri}: no MLflow model (MLmodel file) at that path")
    return ResolvedModel(uri, str(path.resolve()))
