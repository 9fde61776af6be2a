"""Run results where a scheduler can read them: a JSON file on any Hadoop path, one row per run in a Delta
"runs" table, and Databricks task values. The jobs print the same summary as their last stdout line, which
in cluster deploy mode, on Databricks and on Fabric never reaches the scheduler."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from pyspark.sql import SparkSession

from ..config.sections import ReportSection
from ..core.names import is_table_identifier
from .delta import write_table
from .fs import data_paths
from .tables import TableRef

log = logging.getLogger(__name__)

RUNS_SCHEMA = (
    "job string, status string, exit_code int, finished_at timestamp, seconds double, model string, "
    "input string, output string, mlflow_run_id string, summary string"
)
TASK_VALUE_LIMIT = 48 * 1024  # Databricks refuses task values whose JSON exceeds 48 KiB


def runs_table_ref(text: str) -> TableRef:
    """``report.runs_table``: a catalog name (``main.ops.runs``), or a path (it has a ``/`` or a scheme)."""
    return TableRef.of(table=text) if is_table_identifier(text) and "/" not in text else TableRef.of(path=text)


def run_row(job: str, record: dict[str, Any], finished_at: dt.datetime) -> tuple:
    """One row of the runs table for a job's summary ``record``."""
    model = record.get("model") or (record.get("candidate") or {}).get("model")
    seconds = record.get("seconds")
    return (
        job,
        str(record.get("status")),
        int(record.get("exit_code", 0)),
        finished_at,
        float(seconds) if seconds is not None else None,
        model,
        record.get("input") or record.get("data"),
        record.get("output") or record.get("model_uri"),
        record.get("mlflow_run_id") or record.get("run_id"),
        json.dumps(record, default=str, sort_keys=True),
    )


def set_task_values(record: dict[str, Any]) -> bool:
    """Set ``status``, ``exit_code`` and ``summary`` as Databricks task values; False where there is no
    ``dbutils`` (anywhere but a Databricks job)."""
    try:
        from pyspark.dbutils import DBUtils  # type: ignore[import-not-found]  # Databricks runtimes only
    except ImportError:
        return False
    values = DBUtils(SparkSession.getActiveSession()).jobs.taskValues
    summary = json.dumps(record, default=str)
    values.set(key="status", value=str(record.get("status")))
    values.set(key="exit_code", value=int(record.get("exit_code", 0)))
    if len(summary) <= TASK_VALUE_LIMIT:
        values.set(key="summary", value=json.loads(summary))
    else:
        log.warning("summary is %d bytes, over the task value limit; set status and exit_code only", len(summary))
    return True


def check_places(spark: SparkSession, report: ReportSection) -> None:
    """Before the job's work: the places ``report`` names can be written from this session (a Spark Connect
    client cannot write a file), so a run never does its work and then fails to report it.

    Raises
    ------
    DataError
        ``report.summary_path`` set on a session that cannot write files.
    """
    if report.summary_path and not data_paths(spark).writes_files:
        data_paths(spark).write_text(report.summary_path, "")  # raises the error that names key and path


def publish(spark: SparkSession, report: ReportSection, job: str, record: dict[str, Any]) -> None:
    """Write the summary ``record`` of one ``job`` run wherever ``report`` asks.

    A failure here fails the run (exit code 1 with the error): a scheduler that reads these places must not
    take a missing result for an old one.
    """
    if report.summary_path:
        data_paths(spark).write_text(report.summary_path, json.dumps(record, default=str, sort_keys=True) + "\n")
        log.info("summary written to %s", report.summary_path)
    if report.runs_table:
        target = runs_table_ref(report.runs_table)
        row = run_row(job, record, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        # Blind appends: concurrent runs never conflict; the first run creates the table.
        write_table(spark.createDataFrame([row], RUNS_SCHEMA), target, "append")
        log.info("run recorded in %s", target.describe())
    if report.task_values and set_task_values(record):
        log.info("Databricks task values set: status=%s exit_code=%s", record.get("status"), record.get("exit_code"))
