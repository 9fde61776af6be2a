"""Typed job configuration (dataclasses with help text, YAML files, ``--set`` overrides) and the jobs' CLI."""

from .loader import describe, load_config, option, parse_override, require, to_flat_dict

__all__ = ["describe", "load_config", "option", "parse_override", "require", "to_flat_dict"]
