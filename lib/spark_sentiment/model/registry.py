"""MLflow Model Registry: aliases after registration, and resolving any model URI to a concrete version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..core.errors import ModelError
from .compat import get_logged_model
from .uri import parse_model_uri

CHAMPION = "champion"
REQUEST_TAG = "spark_sentiment.request_id"  # model version tag: the training request that registered it


@dataclass(frozen=True)
class ResolvedModel:
    """A model pinned to one artifact set; ``label`` is recorded beside every prediction."""

    requested: str
    uri: str  # concrete: models:/Name/<version>, models:/m-<id>, runs:/... or a local path
    name: str | None = None
    version: str | None = None
    # A registered version's artifact source as its registry records it (a run's artifact URI, or a logged
    # model's models:/m-<id>): unique across registries, where Name/<version> is not (dev and prod both hold
    # SentimentAnalysis/1), so it keys the package cache beside ``uri``.
    source: str | None = None

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


def version_for_request(name: str, request_id: str) -> ResolvedModel | None:
    """The version of ``name`` registered for the training request ``request_id``, or None (also when the
    model does not exist yet). Tags are compared here, not in the filter: not every registry searches tags."""
    for found in MlflowClient().search_model_versions(f"name = '{name}'"):
        if (found.tags or {}).get(REQUEST_TAG) == request_id:
            concrete = f"models:/{name}/{found.version}"
            return ResolvedModel(concrete, concrete, name, str(found.version), getattr(found, "source", None))
    return None


def tag_request(name: str, version: str, request_id: str) -> None:
    """Mark ``version`` as registered for ``request_id`` (see :func:`version_for_request`)."""
    MlflowClient().set_model_version_tag(name, version, REQUEST_TAG, request_id)


def resolve_model(uri: str) -> ResolvedModel:
    """Resolve ``uri`` once, on the driver, to a concrete version (forms: :func:`uri.parse_model_uri`).

    Raises
    ------
    ModelError
        The model, version, alias, run or path does not exist (message names the URI).
    """
    parsed = parse_model_uri(uri)
    client = MlflowClient()
    try:
        if parsed.kind == "logged":
            get_logged_model(parsed.name, uri)
            return ResolvedModel(uri, uri)
        if parsed.kind == "registered":
            name, version = parsed.name, parsed.version
            if parsed.alias:
                found = client.get_model_version_by_alias(name, parsed.alias)
            elif version is None or version == "latest":
                versions = client.search_model_versions(f"name = '{name}'")
                if not versions:
                    raise ModelError(f"model URI {uri}: registered model {name!r} has no versions")
                found = max(versions, key=lambda v: int(v.version))
            elif version.isdigit():
                found = client.get_model_version(name, version)
            else:
                raise ModelError(f"model URI {uri}: version must be a number, 'latest' or @alias")
            concrete = f"models:/{name}/{found.version}"
            return ResolvedModel(uri, concrete, name, str(found.version), getattr(found, "source", None))
        if parsed.kind == "run":
            client.get_run(parsed.run_id)
            return ResolvedModel(uri, uri)
    except MlflowException as exc:
        raise ModelError(f"model URI {uri} cannot be resolved: {exc.message.splitlines()[0]}") from exc
    path = Path(uri).expanduser()
    if not (path / "MLmodel").is_file():
        raise ModelError(f"model URI {uri}: no MLflow model (MLmodel file) at that path")
    return ResolvedModel(uri, str(path.resolve()))


def training_run_id(resolved: ResolvedModel) -> str | None:
    """The MLflow run that produced the model (registry version, ``runs:/`` or ``models:/m-<id>``); None for
    local folders and when the registry cannot say."""
    parsed = parse_model_uri(resolved.uri)
    try:
        if parsed.kind == "registered" and resolved.version:
            return MlflowClient().get_model_version(parsed.name, resolved.version).run_id
        if parsed.kind == "run":
            return parsed.run_id
        if parsed.kind == "logged":
            return get_logged_model(parsed.name, resolved.uri).source_run_id
    except MlflowException:
        return None
    return None
