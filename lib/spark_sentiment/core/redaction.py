"""Keep secrets out of logs, summaries and MLflow params.

A config key or Spark conf whose name looks secret (token, password, account key...) is replaced by
``***``; so is any occurrence of a secret-looking environment variable's value, and the user:password
part of a URL.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import traceback
from types import TracebackType
from typing import Any, Iterator, TextIO

SECRET_NAME = re.compile(
    r"(token|secret|password|passwd|credential|access[._-]?key|account[._-]?key|private[._-]?key|api[._-]?key"
    r"|sas|signature)",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
MASK = "***"


def _secret_values() -> list[str]:
    values = [v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 4]
    return sorted(values, key=len, reverse=True)  # longest first: a secret containing another is masked whole


def scrub(text: str) -> str:
    """``text`` with secret environment values and URL credentials masked."""
    for value in _secret_values():
        text = text.replace(value, MASK)
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)


def redact(value: Any, name: str = "") -> Any:
    """Mask ``value`` when ``name`` looks secret; recurse into dicts (Spark confs) and lists."""
    if name and SECRET_NAME.search(name):
        return MASK
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def config_params(flat: dict[str, Any]) -> dict[str, Any]:
    """MLflow params from a flattened config (``cfg.<key>``), secrets masked."""
    return {f"cfg.{k}": redact(v, k) for k, v in flat.items()}


class ScrubbedStream(io.TextIOBase):
    """A text stream that masks secrets in everything written through it before passing it on: libraries
    print URIs as they were given (MLflow's "View run at" links carry a tracking URI's ``user:password@``),
    which no log format of ours would see. Each write is scrubbed whole; a secret split across two writes is
    not seen (the libraries here write lines)."""

    def __init__(self, target: TextIO) -> None:
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(scrub(text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")


@contextlib.contextmanager
def scrubbed_output() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` scrubbed for the duration (nested uses wrap once)."""
    saved = sys.stdout, sys.stderr
    if not isinstance(sys.stdout, ScrubbedStream):
        sys.stdout = ScrubbedStream(sys.stdout)
    if not isinstance(sys.stderr, ScrubbedStream):
        sys.stderr = ScrubbedStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def scrubbed_excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook`` that prints the traceback with secrets masked (an unexpected failure's message may
    hold the URI it failed on)."""
    sys.stderr.write(scrub("".join(traceback.format_exception(kind, value, tb))))
