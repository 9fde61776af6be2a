"""Typed configuration: nested dataclasses loaded from YAML plus ``--set dotted.key=value`` overrides.

Every field carries ``metadata={"help": ...}``. Loading checks unknown keys and types against the
dataclass type hints, then runs each section's ``validate()``; all errors name the dotted key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from ..core.errors import ConfigError

T = TypeVar("T")

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _yaml():
    # Imported where a config is read, not with the module: executors import the config sections (the
    # predictor's options are one) in environments that hold only the worker's packages, without PyYAML.
    import yaml

    return yaml


def option(default: Any, help: str, exclusive_with: str | None = None) -> Any:
    """A dataclass field with help text (``default`` may be a list; it is copied per instance).

    ``exclusive_with`` names a sibling key that a ``--set`` of this key removes (path vs table).
    """
    metadata = {"help": help, "exclusive_with": exclusive_with}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def expand_env(value: Any) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` inside string values, recursively."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found:
                return found
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set (referenced as ${{{name}}} in the config)")

        return _ENV_PATTERN.sub(substitute, value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``dotted.key=value``; the value is read as YAML (``3`` is an int, ``[a, b]`` a list), except a
    value starting with a backtick, which is a string (a quoted table name)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects dotted.key=value, got {text!r}")
    if raw.strip().startswith("`"):
        # A backtick-quoted identifier (`my-catalog`.ml.reviews): YAML reserves the backtick, so such a value
        # could never parse; it is taken as the string it is.
        return key, raw.strip()
    yaml = _yaml()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({exc.__class__.__name__})") from None
    return key, value


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key '{'.'.join(parts[: i + 1])}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def _drop_exclusive_sibling(cls: type, tree: dict[str, Any], key: str, overridden: set[str]) -> None:
    """``--set input.path=...`` replaces an ``input.table`` from the file (fields marked ``exclusive_with``);
    setting both with ``--set`` stays an error."""
    *sections, name = key.split(".")
    node: Any = tree
    for part in sections:
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        if part not in fields or not isinstance(node, dict):
            return
        cls, node = get_type_hints(cls)[part], node.get(part, {})
    fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    sibling = fields[name].metadata.get("exclusive_with") if name in fields else None
    if sibling and isinstance(node, dict) and ".".join([*sections, sibling]) not in overridden:
        node.pop(sibling, None)


def load_config(cls: type[T], path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()) -> T:
    """Build ``cls`` from an optional YAML file and ``key=value`` overrides, then validate it.

    Raises
    ------
    ConfigError
        Unknown key, wrong type, impossible value, unreadable file; the message names the key.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        yaml = _yaml()
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {file} must hold a mapping of sections, got {type(loaded).__name__}")
        tree = loaded
    overridden: set[str] = set()
    for text in overrides:
        key, value = parse_override(text)
        _drop_exclusive_sibling(cls, tree, key, overridden)
        _set_dotted(tree, key, value)
        overridden.add(key)
    config = _build(cls, expand_env(tree), prefix="")
    _validate(config, prefix="")
    return config


def _build(cls: type[T], data: Any, prefix: str, base: T | None = None) -> T:
    """Apply ``data`` on top of ``base`` (default ``cls()``), so unset keys keep the section's own defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {data!r}")
    base = cls() if base is None else base
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}' (valid keys here: {', '.join(sorted(names))})")
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}", getattr(base, name)) for name, value in data.items()}
    return dataclasses.replace(base, **kwargs)  # type: ignore[type-var]


def _coerce(hint: Any, value: Any, key: str, default: Any = None) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value if value is not None else {}, prefix=f"{key}.", base=default)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _coerce(inner, value, key)
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin in (list, typing.List):
        (inner,) = get_args(hint) or (Any,)
        if isinstance(value, str) and inner is str:
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return [_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 3e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {hint!r} for {key}")  # a bug in a config class, not user input


def _validate(config: Any, prefix: str) -> None:
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            _validate(value, f"{prefix}{f.name}.")
    check = getattr(config, "validate", None)
    if check is not None:
        check(prefix)


def require(condition: bool, key: str, message: str) -> None:
    """Raise a :class:`ConfigError` for ``key`` unless ``condition`` holds (used by ``validate``)."""
    if not condition:
        raise ConfigError(f"config key '{key}' {message}")


def to_flat_dict(config: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a config to ``{"section.key": value}`` (for MLflow params and summaries)."""
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            flat.update(to_flat_dict(value, f"{prefix}{f.name}."))
        else:
            flat[f"{prefix}{f.name}"] = value
    return flat


def describe(cls: type, prefix: str = "", instance: Any = None) -> list[tuple[str, str, Any, str]]:
    """``(key, type, default, help)`` rows for every key: the README's config reference is made from this."""
    instance = cls() if instance is None else instance
    rows: list[tuple[str, str, Any, str]] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, default = hints[f.name], getattr(instance, f.name)
        if dataclasses.is_dataclass(hint):
            rows.extend(describe(hint, f"{prefix}{f.name}.", default))
            continue
        rows.append((f"{prefix}{f.name}", _type_name(hint), default, f.metadata.get("help", "")))
    return rows


def _type_name(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is Literal:
        return " / ".join(map(str, args))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return getattr(hint, "__name__", str(hint))
