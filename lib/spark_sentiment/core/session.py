"""Spark session with Delta Lake, built on demand (never at import) and passed into library functions.

Two situations:

* launched by ``spark-submit`` (or a cluster runtime such as Databricks/Fabric), or a session already
  exists: the cluster's settings win. We add only what the job needs and nobody set -- the Delta extension
  and catalog -- and never touch the master, the warehouse or the metastore;
* ``SPARK_REMOTE`` set (``sc://host:15002``): a Spark Connect client; the server's Spark, Delta and
  catalog are used as they are;
* started from plain Python (tests, notebooks): we launch a local JVM with ``local[*]`` (or
  ``$SPARK_MASTER``), the Delta jars via ``spark.jars.packages`` and a persistent local catalog (warehouse +
  Derby metastore) under the project data dir.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping

from pyspark import SparkConf
from pyspark.sql import SparkSession

from .errors import ConfigError
from .paths import data_dir
from .spark_conf import DELTA_CONF, DELTA_EXTENSION, delta_maven_coordinate, local_catalog

# Job settings every session gets when nobody set them (Arrow for toPandas/createDataFrame on the driver;
# the scoring engine re-batches Arrow batches itself).
JOB_CONF = {"spark.sql.execution.arrow.pyspark.enabled": "true"}


def local_defaults(base: Path | None = None) -> dict[str, str]:
    """Confs for a local run: warehouse and Derby metastore under the data dir, so tables outlive the session."""
    return {**local_catalog(str((base or data_dir()).resolve())), **JOB_CONF}


def is_local(spark: SparkSession) -> bool:
    """Whether the session runs on a local master (its driver disk is the only place it stores anything)."""
    return str(spark.conf.get("spark.master", "local")).startswith("local")


def _submitted() -> bool:
    # spark-submit starts the JVM first and hands the Python driver its gateway port.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _cluster_session(builder: SparkSession.Builder, conf: Mapping[str, Any] | None) -> SparkSession:
    """Under spark-submit: add the Delta extension/catalog and the job's own confs only where unset."""
    existing = SparkConf()  # what spark-submit, spark-defaults.conf and the cluster already set
    for key, value in {**DELTA_CONF, **JOB_CONF, **{k: str(v) for k, v in (conf or {}).items()}}.items():
        if not existing.contains(key):
            builder = builder.config(key, value)
        elif key == "spark.sql.extensions" and DELTA_EXTENSION not in existing.get(key):
            builder = builder.config(key, f"{existing.get(key)},{DELTA_EXTENSION}")  # keep the cluster's own
    return builder.getOrCreate()


def connect_client_problem() -> str | None:
    """Why this pyspark's Spark Connect client cannot run the jobs, or None. Feature-detected: Spark 3.5's
    Connect DataFrame has no ``localCheckpoint`` (4.0 added it), which the jobs use to score each row once."""
    import pyspark

    try:
        from pyspark.sql.connect.dataframe import DataFrame as ConnectDataFrame
    except ImportError as exc:
        return f"the Spark Connect client needs pyspark[connect]'s packages ({exc})"
    except Exception as exc:  # noqa: BLE001 - e.g. protobuf's VersionError: a client built for another protobuf
        first = str(exc).splitlines()[0] if str(exc) else ""
        return (
            f"the Spark Connect client of pyspark {pyspark.__version__} cannot be loaded: {type(exc).__name__}: {first}"
        )
    if "localCheckpoint" not in vars(ConnectDataFrame):
        return (
            f"the Spark Connect client of pyspark {pyspark.__version__} has no DataFrame.localCheckpoint, which the "
            "jobs need (Spark Connect clients from pyspark 4.0 have it); run the job on the cluster (spark-submit, a "
            "notebook) or from a pyspark>=4.0 client"
        )
    return None


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
        Project data dir for the local warehouse and metastore (default :func:`paths.data_dir`); used only
        when this call launches a local JVM.

    Returns
    -------
    SparkSession
        With the Delta SQL extension and catalog configured.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    remote = os.environ.get("SPARK_REMOTE")
    if remote:  # a Spark Connect client: the server owns Spark, Delta and the catalog; only runtime confs
        problem = connect_client_problem()
        if problem:
            raise ConfigError(f"SPARK_REMOTE={remote}: {problem}")
        spark = SparkSession.builder.remote(remote).getOrCreate()
        for key, value in {**JOB_CONF, **{k: str(v) for k, v in (conf or {}).items()}}.items():
            spark.conf.set(key, value)
        return spark

    builder = SparkSession.builder.appName(app_name)
    if _submitted():
        return _cluster_session(builder, conf)

    wanted: dict[str, str] = {**DELTA_CONF, **local_defaults(base_dir)}
    wanted.update({k: str(v) for k, v in (conf or {}).items()})
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
