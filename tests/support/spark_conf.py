"""Spark settings of every JVM the tests and the runtime matrix start (stdlib only: the matrix imports it
without the project installed)."""

from __future__ import annotations

# Spark and Delta tuned for tables of a few rows (as Delta's own test suites do): the log's state is
# rebuilt in one partition, adaptive execution plans no extra jobs, and a shuffle has 2 partitions, not 200
# (without adaptive execution nothing would coalesce them). Nothing the jobs do changes. Expressions and
# plans are interpreted, not compiled to Java (Spark's codegen and its interpreted fallback compute the same
# rows; Spark's own suites run both): on rows this few, compiling each query's generated classes and then
# JIT-compiling them costs more than it saves. The test session, the job processes, the cluster's submits,
# the Connect server and the runtime matrix all run with it; figures: docs/performance.md#test-suite-settings.
SMALL_DATA_CONF = {
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


def submit_confs(conf: dict[str, str]) -> str:
    """``conf`` as spark-submit ``--conf`` options (for ``SPARK_SUBMIT_OPTS_EXTRA``, which is word-split)."""
    return " ".join(f"--conf {key}={value}" for key, value in conf.items())


S3_BUCKET = "lake"


S3_KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def s3a_conf(endpoint: str) -> dict[str, str]:
    """Hadoop s3a settings for the loopback S3 server (as a cluster's spark-defaults.conf would give them)."""
    return {
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.access.key": S3_KEYS["aws_access_key_id"],
        "spark.hadoop.fs.s3a.secret.key": S3_KEYS["aws_secret_access_key"],
        "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }


SHORT_LIVED_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


# This session's JVM runs ~1,000 different small queries in ten minutes; with the defaults a third of its
# CPU goes to the C2 compiler and a tenth to G1's concurrent threads. Compiling only what is three times
# hotter, and the parallel collector, keep the CPU for the queries (C1 alone is slower here: its code cache
# is swept busily).
SESSION_JVM = "-XX:+UseParallelGC -XX:CompileThresholdScaling=3"
