"""Keep secrets out of logs, summaries and MLflow params.

A config key or Spark conf whose name looks secret (token, password, account key...) is replaced by
``***``; so is any occurrence of a secret-looking environment variable's value, and the user:password
part of a URL.
"""

from __future__ import annotations

import os
import re
from typing import Any

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
