"""Shared command line of the jobs: ``--config FILE``, repeated ``--set key=value``, one JSON summary line."""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from ..core.errors import SentimentError
from ..core.redaction import scrub
from .loader import load_config

C = TypeVar("C")
DEFAULTS = "defaults"  # the packaged configs: spark_sentiment/config/defaults/*.yaml (conf/ links to them)


def packaged_config(name: str) -> Path:
    """A config shipped inside the package (``score.yaml``, ``demo.yaml``, ...), wherever it is installed."""
    return Path(str(importlib.resources.files(__package__).joinpath(DEFAULTS, name)))


def parse_config(argv: Sequence[str], config_cls: type[C], default_config: Path | None, description: str) -> C:
    """Parse the job arguments into a validated config (raises ConfigError before anything starts)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--config",
        default=str(default_config) if default_config and default_config.is_file() else None,
        help="YAML config file; a bare name such as demo.yaml or conf/demo.yaml not found here is taken from the "
        "package's defaults (default: the job's own packaged conf, e.g. score.yaml)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one dotted key, value read as YAML (repeatable), e.g. --set train.epochs=1",
    )
    args = parser.parse_args(list(argv))
    path = args.config
    if path and not Path(path).exists() and str(Path(path).parent) in (".", "conf"):
        # "score.yaml" or "conf/score.yaml" from any working directory (an installed wheel, a cluster task):
        # the packaged config of that name.
        shipped = packaged_config(Path(path).name)
        path = str(shipped) if shipped.is_file() else path
    return load_config(config_cls, path, args.overrides)


def run_job(
    argv: Sequence[str],
    config_cls: type[C],
    default_config: Path | None,
    body: Callable[[C], Any],
    description: str,
) -> int:
    """Run ``body(config)``; print its summary (a dict, or a dataclass with ``as_dict()``) as the last stdout
    line and return its ``exit_code`` (default 0), or print one ``error:`` line and return 2."""
    if not logging.getLogger().handlers:  # a host that configured logging (a notebook, pytest) keeps its own
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its shutdown line would follow our summary on stdout
    # Progress bars of downloads, dataset maps and weight loading drown the job's own lines in batch logs.
    for name in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_NO_PROGRESS_BAR"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        config = parse_config(argv, config_cls, default_config, description)
        summary = body(config)
    except SentimentError as exc:
        print(f"error: {scrub(str(exc))}", file=sys.stderr, flush=True)
        return 2
    record = summary.as_dict() if hasattr(summary, "as_dict") else summary
    print(json.dumps(record, default=str), flush=True)
    return int(record.get("exit_code", 0))  # a job may report an outcome the scheduler acts on
