"""Spark session with Delta Lake, built on demand (never at import) and passed into library functions.

Two situations:

* launched by ``spark-submit`` (or a cluster runtime such as Databricks/Fabric): the JVM already exists and
  its settings win; we only fill in keys nobody set (warehouse, Delta extension) and never touch the master;
* started from plain Python (tests, notebooks): we launch the JVM with ``local[*]`` (or ``$SPARK_MASTER``),
  the Delta jars via ``spark.jars.packages`` and a persistent Hive metastore under the project data dir.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping

from pyspark import SparkConf
from pyspark.sql import SparkSession

from .paths import data_dir
from .spark_conf import DELTA_CONF, delta_maven_coordinate


def local_defaults(base: Path | None = None) -> dict[str, str]:
    """Confs for a local run: warehouse and Derby metastore under the data dir, so tables outlive the session."""
    base = (base or data_dir()).resolve()
    metastore = base / "metastore_db"
    return {
        "spark.sql.warehouse.dir": str(base / "warehouse"),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={base}",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        # Arrow batches feed the pandas UDFs; the scoring engine re-batches them itself.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


def _submitted() -> bool:
    # spark-submit starts the JVM first and hands the Python driver its gateway port.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(
    app_name: str = "spark-sentiment",
    conf: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> SparkSession:
    """Return the active session, or build one with Delta enabled.

    Parameters
    ----------
    app_name
        Application name, used only when this call launches Spark.
    conf
        Extra Spark confs; a key already set by spark-submit or the cluster is left as it is.
    base_dir
        Project data dir for the local warehouse and metastore (default :func:`paths.data_dir`).

    Returns
    -------
    SparkSession
        With the Delta SQL extension and catalog configured.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    wanted: dict[str, str] = {**DELTA_CONF, **local_defaults(base_dir)}
    wanted.update({k: str(v) for k, v in (conf or {}).items()})
    builder = SparkSession.builder.appName(app_name)

    if _submitted():
        existing = SparkConf()  # reads what spark-submit / the cluster already set
        for key, value in wanted.items():
            if not existing.contains(key):
                builder = builder.config(key, value)
        return builder.getOrCreate()

    # Plain Python: we launch the JVM, so Python workers must run this interpreter (the venv's).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    wanted.setdefault("spark.master", os.environ.get("SPARK_MASTER", "local[*]"))
    packages = [p for p in wanted.get("spark.jars.packages", "").split(",") if p]
    # Delta from Maven through Spark's resolver, unless the caller hands over the jars themselves
    # (spark.jars: an air-gapped cluster, or jars another session already resolved).
    if not any("delta-spark" in p for p in packages) and "delta-spark" not in wanted.get("spark.jars", ""):
        packages.insert(0, delta_maven_coordinate())
    if packages:
        wanted["spark.jars.packages"] = ",".join(packages)
    for key, value in wanted.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "WARN"))
    return spark
