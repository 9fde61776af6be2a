"""Data paths through Spark's Hadoop FileSystem, never ``pathlib``: ``s3a://``, ``abfss://``, ``gs://``,
``hdfs://``, ``dbfs:/``, ``file:///...`` and plain local paths all go through the file system of their scheme,
configured as the session configures it (``spark.hadoop.*`` and session-level ``fs.*`` confs).

A path without a scheme means what it means to Spark: the cluster's default file system (``dbfs:/`` on
Databricks, the lakehouse on Fabric, the local disk for a local session).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Protocol

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession

from ..core.errors import DataError


@dataclass(frozen=True)
class Entry:
    """One child of a folder: its name and whether it is a folder itself."""

    name: str
    is_dir: bool


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for any URI (``s3a://b/x`` + ``y`` -> ``s3a://b/x/y``), without touching the store."""
    return posixpath.join(base.rstrip("/") or "/", *parts)


def suffix(path: str) -> str:
    """The extension of the last path component (``.parquet``), or ``""``."""
    return posixpath.splitext(path.rstrip("/"))[1]


class Paths(Protocol):
    """What the jobs ask of a data path (both implementations below)."""

    writes_files: bool  # write_text works (False over Spark Connect)

    def qualify(self, path: str) -> str: ...
    def exists(self, path: str) -> bool: ...
    def is_dir(self, path: str) -> bool: ...
    def is_file(self, path: str) -> bool: ...
    def children(self, path: str) -> list[Entry]: ...
    def write_text(self, path: str, text: str) -> None: ...
    def read_text(self, path: str) -> str: ...


def data_paths(spark: SparkSession) -> Paths:
    """Path operations for ``spark``: its Hadoop file systems on a classic session, Spark's own file
    listing over Spark Connect (where the client has no JVM)."""
    if getattr(spark, "_jsparkSession", None) is None:
        return SparkReadPaths(spark)
    return HadoopPaths(spark)


class HadoopPaths:
    """Path operations on one session's Hadoop file systems (one per scheme, cached by Hadoop)."""

    writes_files = True

    def __init__(self, spark: SparkSession):
        jsession = getattr(spark, "_jsparkSession", None)
        if jsession is None:
            raise NotImplementedError("data paths need a classic Spark session (Spark Connect has no JVM handle)")
        self._jvm = spark.sparkContext._jvm
        # Session-level confs (spark.conf.set("fs.s3a.endpoint", ...)) count, as they do for Spark's reads.
        self._conf = jsession.sessionState().newHadoopConf()

    def _fs(self, path: str):
        jpath = self._jvm.org.apache.hadoop.fs.Path(path)
        return jpath.getFileSystem(self._conf), jpath

    def qualify(self, path: str) -> str:
        """The absolute URI Spark would use for ``path`` (scheme and authority of the default FS filled in)."""
        fs, jpath = self._fs(path)
        return str(fs.makeQualified(jpath).toString())

    def exists(self, path: str) -> bool:
        fs, jpath = self._fs(path)
        return bool(fs.exists(jpath))

    def is_dir(self, path: str) -> bool:
        fs, jpath = self._fs(path)
        return bool(fs.exists(jpath)) and bool(fs.getFileStatus(jpath).isDirectory())

    def is_file(self, path: str) -> bool:
        fs, jpath = self._fs(path)
        return bool(fs.exists(jpath)) and bool(fs.getFileStatus(jpath).isFile())

    def children(self, path: str) -> list[Entry]:
        """Direct children of a folder (empty for a file or a missing path)."""
        fs, jpath = self._fs(path)
        if not fs.exists(jpath) or not fs.getFileStatus(jpath).isDirectory():
            return []
        return sorted(
            (Entry(str(s.getPath().getName()), bool(s.isDirectory())) for s in fs.listStatus(jpath)),
            key=lambda e: e.name,
        )

    def write_text(self, path: str, text: str) -> None:
        """Create or replace the file ``path`` with ``text`` (UTF-8). Object stores publish it whole on close."""
        fs, jpath = self._fs(path)
        out = fs.create(jpath, True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()

    def read_text(self, path: str) -> str:
        """The file ``path`` as UTF-8 text."""
        fs, jpath = self._fs(path)
        stream = fs.open(jpath)
        try:
            data = self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
        finally:
            stream.close()
        return bytes(data).decode("utf-8")


class SparkReadPaths:
    """Path operations over Spark Connect: the server lists the path with the ``binaryFile`` source, so every
    scheme the server can read works as it does for the job's reads. Folders list their files only (names
    starting with ``_`` or ``.`` are hidden, as in every Spark read); sub-folders are found by name."""

    writes_files = False

    def __init__(self, spark: SparkSession):
        self.spark = spark

    def _files(self, path: str, limit: int | None = None) -> list[str] | None:
        """Files Spark reads at ``path`` (the file itself, or a folder's files); None when it does not exist."""
        df = self.spark.read.format("binaryFile").load(path).select("path")
        try:
            return [row["path"] for row in (df.limit(limit) if limit else df).collect()]
        except AnalysisException as exc:
            if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
                return None
            raise

    def qualify(self, path: str) -> str:
        return path  # the server resolves it; the client has no view of its default file system

    def exists(self, path: str) -> bool:
        return self._files(path, 1) is not None

    def is_file(self, path: str) -> bool:
        files = self._files(path, 2)
        return files is not None and len(files) == 1 and files[0].rstrip("/").endswith(path.rstrip("/"))

    def is_dir(self, path: str) -> bool:
        return self.exists(path) and not self.is_file(path)

    def children(self, path: str) -> list[Entry]:
        if not self.is_dir(path):
            return []
        names = {posixpath.basename(f.rstrip("/")) for f in self._files(path) or []}
        return [Entry(name, False) for name in sorted(names)]

    def read_text(self, path: str) -> str:
        rows = self.spark.read.text(path, wholetext=True).collect()
        return rows[0]["value"] if rows else ""

    def write_text(self, path: str, text: str) -> None:
        raise DataError(
            f"report.summary_path {path}: writing a file needs a classic Spark session (a Spark Connect client "
            "has no file system); use report.runs_table or the summary on stdout"
        )
