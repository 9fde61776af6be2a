"""The command line every console command shares: one runner (logging, one scrubbed ``error:`` line and exit 2
for bad input, one JSON summary as the last stdout line) and, for the jobs with a config, ``--config FILE``
and repeated ``--set key=value``."""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence, TypeVar

from ..core.errors import SentimentError, bad_input_message
from ..core.redaction import ScrubbedStream, scrub, scrubbed_excepthook, scrubbed_output
from .loader import load_config

C = TypeVar("C")
log = logging.getLogger(__name__)
DEFAULTS = "defaults"  # the packaged configs: spark_sentiment/config/defaults/*.yaml (conf/ links to them)


def packaged_config(name: str) -> Path:
    """A config shipped inside the package (``score.yaml``, ``demo.yaml``, ...), wherever it is installed."""
    return Path(str(importlib.resources.files(__package__).joinpath(DEFAULTS, name)))


def parse_config(argv: Sequence[str], config_cls: type[C], default_config: Path | None, description: str) -> C:
    """Parse the job arguments into a validated config (raises ConfigError before anything starts)."""
    parser = CommandParser(description=description)
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


class CommandParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are scrubbed like every other message (a value it echoes back may be a
    path holding a secret); exit 2 as argparse does."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {scrub(message)}\n")


def run_command(body: Callable[[], Any]) -> int:
    """The one way every console command runs: ``body()`` under the jobs' logging, its summary (a dict, or a
    dataclass with ``as_dict()``) printed as the last stdout line with secrets masked, exit code its
    ``exit_code`` (default 0). Bad input (see :func:`bad_input_message`: ours, and Spark's refusals of a
    missing path or table, a file system it cannot reach, a statement it cannot parse) prints one scrubbed
    ``error:`` line and returns 2; anything else propagates with its traceback."""
    if not logging.getLogger().handlers:  # a host that configured logging (a notebook, pytest) keeps its own
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=ScrubbedStream(sys.stderr),
        )
        # A console command's unexpected failure ends in the interpreter's traceback: masked too.
        sys.excepthook = scrubbed_excepthook
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its shutdown line would follow our summary on stdout
    # Spark 4 logs every SQL or DataFrame error it raises as a JSON line on stderr, unscrubbed, before the
    # exception reaches us; the runner reports it once, below (bad input) or as the traceback (anything else).
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Progress bars of downloads, dataset maps and weight loading drown the job's own lines in batch logs.
    for name in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_NO_PROGRESS_BAR"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        with scrubbed_output():  # what libraries print (MLflow's run links hold the tracking URI as given)
            summary = body()
    except Exception as exc:
        message = bad_input_message(exc)
        if message is None:
            raise
        # Spark's refusals carry a JVM stack trace: kept for whoever debugs at DEBUG, out of the error line.
        log.debug("bad input", exc_info=not isinstance(exc, SentimentError))
        print(f"error: {scrub(message)}", file=sys.stderr, flush=True)
        return 2
    record = summary.as_dict() if hasattr(summary, "as_dict") else summary
    print(scrub(json.dumps(record, default=str)), flush=True)
    return int(record.get("exit_code", 0))  # a job may report an outcome the scheduler acts on


def run_job(
    argv: Sequence[str],
    config_cls: type[C],
    default_config: Path | None,
    body: Callable[[C], Any],
    description: str,
) -> int:
    """A job with a config (train, score, evaluate): ``--config``/``--set`` parsed into a validated
    ``config_cls`` (a bad key is bad input: one ``error:`` line, exit 2), then ``body(config)`` under
    :func:`run_command`."""
    return run_command(lambda: body(parse_config(argv, config_cls, default_config, description)))
