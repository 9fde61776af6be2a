"""The Spark settings the jobs need, in one place: the session builder, ``spark-submit.sh`` and the deploy
examples all read them from here. No pyspark import, so a scheduler host can use it too.

Two kinds of settings:

* :data:`DELTA_CONF` -- what every run needs (the Delta SQL extension and catalog); filled in only where the
  cluster has not set them;
* :func:`local_catalog` -- a warehouse folder and a Derby metastore under the project's data dir, for a run
  that launches its own local JVM. Never applied to a cluster: there the metastore is the cluster's
  (``hive-site.xml``, Unity Catalog, Fabric's lakehouse), and overriding it would silently switch tables.

    python -m spark_sentiment.core.spark_conf              # spark-submit arguments: --packages ... --conf ...
    python -m spark_sentiment.core.spark_conf --local DIR  # ... plus the local warehouse/metastore under DIR
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CONF = {
    "spark.sql.extensions": DELTA_EXTENSION,
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def delta_maven_coordinate(spark_version: str | None = None, delta_version: str | None = None) -> str:
    """Maven coordinate of the Delta jars for a Spark and Delta release, by default those of the installed
    pyspark and delta-spark wheels (a scheduler host without them, e.g. Airflow's, passes the cluster's).

    Delta 3.x (Spark 3.5) is built for Scala 2.12: ``io.delta:delta-spark_2.12:<version>``; Delta 4.0
    (Spark 4.0) for Scala 2.13: ``io.delta:delta-spark_2.13:4.0.x``; from Delta 4.1 the artifact also
    carries the Spark line: ``io.delta:delta-spark_<major.minor>_2.13:<version>``.
    """
    spark_line = ".".join((spark_version or importlib.metadata.version("pyspark")).split(".")[:2])
    delta = delta_version or importlib.metadata.version("delta-spark")
    major_minor = tuple(int(part) for part in delta.split(".")[:2])
    if major_minor < (4, 0):
        return f"io.delta:delta-spark_2.12:{delta}"
    if major_minor < (4, 1):
        return f"io.delta:delta-spark_2.13:{delta}"
    return f"io.delta:delta-spark_{spark_line}_2.13:{delta}"


def spark_hadoop_version() -> str:
    """The Hadoop release the installed pyspark bundles (from its ``hadoop-client-api-<version>.jar``)."""
    import pyspark  # imported here: the rest of this module must work on hosts without pyspark

    jars = os.path.join(os.path.dirname(pyspark.__file__), "jars")
    for name in sorted(os.listdir(jars)):
        if name.startswith("hadoop-client-api-") and name.endswith(".jar"):
            return name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    raise FileNotFoundError(f"no hadoop-client-api jar in {jars}")


def hadoop_aws_maven_coordinate() -> str:
    """``org.apache.hadoop:hadoop-aws`` matching pyspark's Hadoop: the ``s3a://`` file system for a local
    session (add it to ``spark.jars.packages``; clusters and managed runtimes bring their own)."""
    return f"org.apache.hadoop:hadoop-aws:{spark_hadoop_version()}"


def local_catalog(base: str) -> dict[str, str]:
    """Confs for a run that starts its own local JVM: tables and their metastore under ``base`` (a local
    folder), so they outlive the session; UTC timestamps and no console progress bar."""
    base = os.path.abspath(base)
    return {
        "spark.sql.warehouse.dir": os.path.join(base, "warehouse"),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={os.path.join(base, 'metastore_db')};create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={base}",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
    }


def submit_arguments(local_base: str | None = None) -> list[str]:
    """``spark-submit`` arguments that add the Delta jars and confs (and, with ``local_base``, the local
    catalog; the driver Java options are left to the caller, which has its own)."""
    arguments = ["--packages", delta_maven_coordinate()]
    confs = dict(DELTA_CONF)
    if local_base is not None:
        confs.update({k: v for k, v in local_catalog(local_base).items() if k != "spark.driver.extraJavaOptions"})
    for key, value in confs.items():
        arguments += ["--conf", f"{key}={value}"]
    return arguments


if __name__ == "__main__":
    args = sys.argv[1:]
    local = args[1] if args[:1] == ["--local"] and len(args) == 2 else None
    if args and local is None:
        sys.exit("usage: python -m spark_sentiment.core.spark_conf [--local DATA_DIR]")
    print("\n".join(submit_arguments(local)))
