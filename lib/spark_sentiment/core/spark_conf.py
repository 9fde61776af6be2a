"""The Spark settings Delta needs, in one place: the session builder, ``spark-submit.sh`` and the deploy
examples all read them from here. No pyspark import, so a scheduler host can use it too.

    python -m spark_sentiment.core.spark_conf    # prints spark-submit arguments: --packages ... --conf ...
"""

from __future__ import annotations

import importlib.metadata

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def delta_maven_coordinate() -> str:
    """Maven coordinate of the Delta jars matching the installed delta-spark and pyspark wheels.

    From Delta 4.1 the artifact carries the Spark line: ``io.delta:delta-spark_<major.minor>_2.13:<version>``.
    """
    spark_line = ".".join(importlib.metadata.version("pyspark").split(".")[:2])
    return f"io.delta:delta-spark_{spark_line}_2.13:{importlib.metadata.version('delta-spark')}"


def submit_arguments() -> list[str]:
    """``spark-submit`` arguments that add the Delta jars and confs."""
    arguments = ["--packages", delta_maven_coordinate()]
    for key, value in DELTA_CONF.items():
        arguments += ["--conf", f"{key}={value}"]
    return arguments


if __name__ == "__main__":
    print("\n".join(submit_arguments()))
