"""Model URIs, parsed in one place: ``models:/Name@alias``, ``models:/Name/<version>``, ``models:/Name/latest``,
``models:/m-<id>`` (a logged model), ``runs:/<run_id>/<path>`` and local folders."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..core.errors import ModelError

Kind = Literal["registered", "logged", "run", "path"]
_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?$")


@dataclass(frozen=True)
class ModelUri:
    """A parsed model URI.

    ``kind`` is ``registered`` (``name`` plus ``alias`` or ``version``; neither means latest), ``logged``
    (``models:/m-<id>``, the id in ``name``), ``run`` (``run_id``) or ``path`` (a local MLflow model folder).
    """

    text: str
    kind: Kind
    name: str | None = None
    alias: str | None = None
    version: str | None = None
    run_id: str | None = None


def parse_model_uri(text: str) -> ModelUri:
    """Parse ``text`` without contacting MLflow.

    Raises
    ------
    ModelError
        An unsupported scheme, or a registered model name that cannot be a name (the message names the URI).
    """
    match = _MODELS.match(text)
    if match:
        name, alias, version = match.group("name"), match.group("alias"), match.group("version")
        if name.startswith("m-") and not (alias or version):
            return ModelUri(text, "logged", name=name)
        if "'" in name or "\\" in name:
            raise ModelError(f"model URI {text}: invalid registered model name {name!r}")
        return ModelUri(text, "registered", name=name, alias=alias, version=version)
    if text.startswith("runs:/"):
        return ModelUri(text, "run", run_id=text.removeprefix("runs:/").split("/", 1)[0])
    if "://" in text or text.startswith("models:"):
        raise ModelError(f"model URI {text}: unsupported scheme (use models:/, runs:/ or a local path)")
    return ModelUri(text, "path")
