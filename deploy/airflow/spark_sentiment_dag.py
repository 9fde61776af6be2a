"""Airflow DAG: weekly train -> evaluate (champion/challenger), daily incremental scoring.

Copy this file to the DAGs folder of an Airflow with ``apache-airflow-providers-apache-spark`` and this
project installed (``pip install spark-sentiment``: the DAG reads Delta's Spark settings from it); set the
``SPARK_SENTIMENT_HOME`` variable to the checkout and the ``spark_default`` connection to the cluster.
The evaluation task is skipped, not failed, when the candidate does not beat the champion (exit code 3).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.models import Variable
from airflow.operators.bash import BashOperator
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

# The Delta jars and confs the jobs need, from the one place the library keeps them (no pyspark import).
from spark_sentiment.core.spark_conf import DELTA_CONF, delta_maven_coordinate

HOME = Variable.get("SPARK_SENTIMENT_HOME", default_var="/opt/spark-sentiment")
DEFAULTS = {"retries": 2, "retry_delay": timedelta(minutes=5)}

with DAG(
    dag_id="spark_sentiment_train_and_promote",
    start_date=datetime(2026, 1, 1),
    schedule="@weekly",
    catchup=False,
    default_args=DEFAULTS,
    tags=["spark-sentiment"],
) as train_dag:
    train = BashOperator(
        task_id="train",
        bash_command=f"cd {HOME} && ./spark-submit.sh jobs/train.py --config conf/train.yaml",
    )
    evaluate = BashOperator(
        task_id="evaluate",
        bash_command=f"cd {HOME} && ./spark-submit.sh jobs/evaluate.py --config conf/evaluate.yaml",
        skip_on_exit_code=3,  # candidate kept out: a result, not a failure
        retries=0,  # never re-decide a promotion automatically
    )
    train >> evaluate

with DAG(
    dag_id="spark_sentiment_score",
    start_date=datetime(2026, 1, 1),
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["spark-sentiment"],
) as score_dag:
    SparkSubmitOperator(
        task_id="score",
        application=f"{HOME}/jobs/score.py",
        py_files=f"{HOME}/data/dist/spark_sentiment.zip",
        packages=delta_maven_coordinate(),
        conf=dict(DELTA_CONF),
        application_args=["--config", f"{HOME}/conf/score.yaml", "--set", "output.mode=incremental"],
        do_xcom_push=True,
    )
