"""Exception types and what counts as bad input. Commands turn bad input into one stderr line and exit 2."""

from __future__ import annotations


class SentimentError(Exception):
    """Base class for user-facing errors: the message alone must say what is wrong."""


class ConfigError(SentimentError, ValueError):
    """A configuration key is unknown, mistyped or has an impossible value."""


class DataError(SentimentError, ValueError):
    """Input data is missing or malformed (path, table, column, label value)."""


class ModelError(SentimentError, ValueError):
    """A model URI, version, alias or artifact cannot be resolved or loaded."""


# Java exceptions that reach Python unconverted (Py4JJavaError) and still mean the input named a path or file
# system that is not there.
_BAD_INPUT_JAVA = {
    "java.io.FileNotFoundException",
    "org.apache.hadoop.fs.UnsupportedFileSystemException",
    "org.apache.hadoop.fs.InvalidPathException",
    "java.net.URISyntaxException",
}


def bad_input_message(exc: BaseException) -> str | None:
    """One line saying what was wrong when ``exc`` means bad input, else ``None``.

    Bad input is ours (:class:`SentimentError`) and Spark's refusals of what a user named: a path or table
    that does not exist, a file system Spark has no client for, a statement it cannot parse or resolve
    (``AnalysisException``, ``ParseException``, ``IllegalArgumentException`` such as Hadoop's "Wrong FS", in
    classic and Connect sessions alike). Anything else (a bug, an outage) returns ``None`` and keeps its
    traceback. The line is not scrubbed here; the command runner masks secrets in it.
    """
    if isinstance(exc, SentimentError):
        return str(exc)
    from pyspark.errors import AnalysisException, IllegalArgumentException

    if isinstance(exc, (AnalysisException, IllegalArgumentException)):
        return f"Spark refused the input: {_spark_message(exc)}"
    java_class = _java_class(exc)
    if java_class in _BAD_INPUT_JAVA:
        return f"Spark refused the input: {java_class.rsplit('.', 1)[-1]}: {_first_line(_java_message(exc))}"
    return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _spark_message(exc: BaseException) -> str:
    message = _first_line(str(exc))
    # A plan that failed on a file system names only the format; the cause (classic sessions) names the scheme.
    cause = getattr(getattr(exc, "_origin", None), "getCause", lambda: None)()
    if cause is not None:
        detail = _first_line(str(cause.getMessage() or ""))
        if detail and detail not in message:
            message = f"{message} ({detail})"
    return message


def _java_class(exc: BaseException) -> str:
    java = getattr(exc, "java_exception", None)
    try:
        return str(java.getClass().getName()) if java is not None else ""
    except Exception:  # noqa: BLE001 - a gateway already closed: not a Java refusal we can read
        return ""


def _java_message(exc: BaseException) -> str:
    java = getattr(exc, "java_exception", None)
    return str(java.getMessage() or "") if java is not None else str(exc)
