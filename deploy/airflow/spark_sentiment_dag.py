"""Airflow DAG: weekly train -> evaluate (champion/challenger), daily incremental scoring.

Copy this file to the DAGs folder of an Airflow with ``apache-airflow-providers-apache-spark`` and this
project installed (``pip install spark-sentiment``: the DAG reads Delta's Spark settings from it); set the
Airflow variables ``SPARK_SENTIMENT_HOME`` (the checkout on the workers), ``MLFLOW_TRACKING_URI`` (the
tracking server every task shares) and ``SPARK_SENTIMENT_RESULTS`` (a Hadoop folder, e.g.
``s3a://lake/ops/spark-sentiment``), ``SPARK_VERSION`` and ``DELTA_VERSION`` (the cluster's), and the
``spark_default`` connection to the cluster.

Results: ``SparkSubmitOperator`` returns nothing and the driver's stdout may never reach the worker, so
every job writes its summary to ``$SPARK_SENTIMENT_RESULTS/<job>/<run>.json`` and a row to the Delta table
``$SPARK_SENTIMENT_RESULTS/runs``. The evaluation task is skipped, not failed, when the candidate does not
beat the champion (exit code 3); a retried training task registers no second version (its Airflow run id
is the request id).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.models import Variable
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3: the standard provider
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

# The Delta jars and confs the jobs need, from the one place the library keeps them (no pyspark import).
from spark_sentiment.core.spark_conf import DELTA_CONF, delta_maven_coordinate

HOME = Variable.get("SPARK_SENTIMENT_HOME", default_var="/opt/spark-sentiment")
# The Delta jars must match the cluster's Spark and Delta, not the scheduler's (which may have neither).
DELTA_PACKAGE = delta_maven_coordinate(
    spark_version=Variable.get("SPARK_VERSION", default_var="4.2.0"),
    delta_version=Variable.get("DELTA_VERSION", default_var="4.4.0"),
)
RESULTS = Variable.get("SPARK_SENTIMENT_RESULTS", default_var=f"{HOME}/data/results")
# MLflow and the jobs' local state must not resolve to each worker's ./data: one tracking server for all.
ENV = {
    "MLFLOW_TRACKING_URI": Variable.get("MLFLOW_TRACKING_URI", default_var="http://mlflow:5000"),
    "SPARK_SENTIMENT_DATA": f"{HOME}/data",
}
DEFAULTS = {"retries": 2, "retry_delay": timedelta(minutes=5)}


def report(job: str) -> str:
    return f"--set report.summary_path={RESULTS}/{job}/{{{{ run_id }}}}.json --set report.runs_table={RESULTS}/runs"


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
        bash_command=f"cd {HOME} && ./spark-submit.sh jobs/train.py --config conf/train.yaml "
        f"--set registry.request_id={{{{ run_id }}}} {report('train')}",
        env=ENV,
        append_env=True,
    )
    evaluate = BashOperator(
        task_id="evaluate",
        bash_command=f"cd {HOME} && ./spark-submit.sh jobs/evaluate.py --config conf/evaluate.yaml "
        f"{report('evaluate')}",
        env=ENV,
        append_env=True,
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
        py_files=f"{HOME}/data/dist/spark_sentiment.zip",  # built by ./spark-submit.sh (or ship the wheel)
        packages=DELTA_PACKAGE,
        conf=dict(DELTA_CONF),
        env_vars=ENV,
        application_args=[
            "--config",
            f"{HOME}/conf/score.yaml",
            "--set",
            "output.mode=incremental",
            "--set",
            f"report.summary_path={RESULTS}/score/{{{{ run_id }}}}.json",
            "--set",
            f"report.runs_table={RESULTS}/runs",
        ],
    )
