"""Exception types. Jobs turn any of these into one stderr line and a non-zero exit."""


class SentimentError(Exception):
    """Base class for user-facing errors: the message alone must say what is wrong."""


class ConfigError(SentimentError, ValueError):
    """A configuration key is unknown, mistyped or has an impossible value."""


class DataError(SentimentError, ValueError):
    """Input data is missing or malformed (path, table, column, label value)."""


class ModelError(SentimentError, ValueError):
    """A model URI, version, alias or artifact cannot be resolved or loaded."""
