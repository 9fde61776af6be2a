"""A class-data archive (CDS) for the tests' JVMs: Spark's, Delta's and Hive's classes parsed and verified once.

Every JVM of a run -- the test session's, and the ~15 short-lived ones of the fault, race, cluster and
Spark Connect tests -- loads the same ~20,000 classes from the same jars. With a dynamic CDS archive
(``-XX:SharedArchiveFile``, JDK 13+) they are mapped from one file instead, which saves each JVM the
parsing and verifying (docs/performance.md#test-suite-settings). The archive is built once per JDK and
pyspark by running :func:`workload` in a JVM with ``-XX:ArchiveClassesAtExit`` (``make jars`` does it beside
the jar cache; otherwise the test session does it before its first JVM, ~1 min) and kept in the venv
(``share/spark-sentiment-tests``). A JVM whose classpath or JDK does not match ignores it and loads classes
as usual (its CDS warnings are silenced), so the archive changes how fast classes load, never which.

    python tests/jvm_classes.py   # build the archive if it is missing; prints its path
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

# The options a JVM needs to use the archive (silent where it cannot: another JDK or classpath).
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def java_options(archive: Path) -> str:
    return f"-XX:SharedArchiveFile={archive} {QUIET}"


def archive_path() -> Path:
    """Where the archive of this JDK and this pyspark installation lives (a new one for any other)."""
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java" if os.environ.get("JAVA_HOME") else shutil.which("java")
    if java is None:
        raise FileNotFoundError("no java on PATH and no JAVA_HOME: Spark needs a JDK 17+")
    java = Path(java).resolve()
    stat = java.stat()
    # A JVM uses the archive only with the classpath it was built with: pyspark's jars where they are installed.
    jars = Path(importlib.util.find_spec("pyspark").origin).parent / "jars"
    versions = [importlib.metadata.version(p) for p in ("pyspark", "delta-spark")]
    key = f"{java}:{stat.st_size}:{stat.st_mtime_ns}:{jars}:{versions}"
    key = hashlib.sha256(key.encode()).hexdigest()[:16]
    # In the venv, like the packages whose classes it holds (it goes when the venv goes); else the user's cache.
    if sys.prefix != sys.base_prefix:
        folder = Path(sys.prefix) / "share" / "spark-sentiment-tests"
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spark-sentiment-tests"
    return folder / f"jvm-classes-{key}.jsa"


def ensure_archive() -> Path:
    """The archive, built first if it is missing (concurrent callers: hold a lock around this)."""
    target = archive_path()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jvm-classes-") as tmp:
        partial = Path(tmp) / "classes.jsa"
        env = {k: v for k, v in os.environ.items() if k != "JAVA_TOOL_OPTIONS"}
        env["PYSPARK_PYTHON"] = sys.executable
        done = subprocess.run(
            [sys.executable, __file__, "--workload", tmp, str(partial)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or not partial.exists():
            raise RuntimeError(f"building the class-data archive {target} failed:\n{done.stderr[-4000:]}")
        partial.replace(target)  # atomic: a concurrent reader sees no archive or a complete one
    return target


def workload(tmp: str, archive: str) -> None:
    """What the tests' JVMs do, in one local session whose classes are archived when its JVM exits: Delta
    into a Hive catalog (create, MERGE, change feed, history), a pandas UDF through Python workers and
    Arrow, a collect to pandas."""
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import pandas_udf
    from spark_sentiment.core.spark_conf import DELTA_CONF, delta_maven_coordinate, hadoop_aws_maven_coordinate

    builder = SparkSession.builder.master("local[2]").appName("jvm-classes")
    confs = {
        **DELTA_CONF,
        "spark.jars.packages": f"{delta_maven_coordinate()},{hadoop_aws_maven_coordinate()}",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.adaptive.enabled": "false",
        "spark.databricks.delta.snapshotPartitions": "1",
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": f"{tmp}/warehouse",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={tmp}/metastore;create=true",
        "spark.driver.extraJavaOptions": f"-XX:ArchiveClassesAtExit={archive} -Dderby.system.home={tmp}",
    }
    for key, value in confs.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    from delta.tables import DeltaTable

    @pandas_udf("string")
    def label(text: pd.Series) -> pd.Series:
        return text.str.len().map(lambda n: "POSITIVE" if n % 2 else "NEGATIVE")

    rows = spark.createDataFrame([(i, f"review {i}") for i in range(20)], "id int, text string")
    rows.withColumn("label", label("text")).write.format("delta").saveAsTable("scored")
    spark.sql("ALTER TABLE scored SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    changes = spark.createDataFrame([(i, f"changed {i}") for i in range(10, 30)], "id int, text string")
    (
        DeltaTable.forName(spark, "scored")
        .alias("t")
        .merge(changes.withColumn("label", label("text")).alias("s"), "t.id = s.id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 1).table("scored").count()
    spark.sql("DESCRIBE HISTORY scored LIMIT 1").collect()
    spark.sql("SELECT label, count(*) FROM scored GROUP BY label").toPandas()
    spark.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--workload"]:
        workload(*sys.argv[2:4])
    else:
        print(ensure_archive())
