"""Results a scheduler can read: every job's summary also lands in a JSON file on a Hadoop path, as one row
per run in a Delta "runs" table, and (in a Databricks job only) in task values; "kept champion" can be an
exit code 0."""

from __future__ import annotations

import json
import sys
import types

import pytest
from pyspark.testing import assertDataFrameEqual
from spark_sentiment.config import load_config
from spark_sentiment.core.errors import ConfigError
from spark_sentiment.io.results import set_task_values
from spark_sentiment.scoring.job import main
from spark_sentiment.validation.config import EvaluateJobConfig
from spark_sentiment.validation.promotion import decide
from stubs import KeywordPredictor
from support.commands import call_main
from support.data import ROWS_FOR_CLUSTER, TINY


class FakeTaskValues:
    """What ``dbutils.jobs.taskValues`` records (a Databricks job's notebook/wheel context, not available here)."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def set(self, key: str, value: object) -> None:
        json.dumps(value)  # Databricks takes JSON-serialisable values only
        self.values[key] = value


def databricks_dbutils(monkeypatch) -> FakeTaskValues:
    """Install ``pyspark.dbutils.DBUtils`` as a Databricks runtime has it."""
    recorded = FakeTaskValues()
    module = types.ModuleType("pyspark.dbutils")

    class DBUtils:
        def __init__(self, spark) -> None:
            assert spark is not None
            self.jobs = types.SimpleNamespace(taskValues=recorded)

    module.DBUtils = DBUtils
    monkeypatch.setitem(sys.modules, "pyspark.dbutils", module)
    return recorded


def test_scoring_summary_reaches_a_file_a_runs_table_and_task_values(
    spark, tiny_model, cdf_source, tmp_path, monkeypatch
):
    summary_file, runs = f"file://{tmp_path}/results/score.json", str(tmp_path / "ops" / "runs")
    sets = [
        f"input.path={cdf_source}",
        f"output.path={tmp_path / 'out'}",
        "input.key_columns=[id]",
        "output.mode=incremental",
    ]
    sets += [f"model.uri={TINY}", f"report.summary_path={summary_file}", f"report.runs_table={runs}"]
    argv = sum((["--set", s] for s in sets), [])

    assert not set_task_values({"status": "x"})  # no dbutils outside Databricks: nothing attempted
    code, out, err = call_main(main, argv, factory=KeywordPredictor)
    assert code == 0, err[-3000:]
    first = json.loads(out.strip().splitlines()[-1])

    task_values = databricks_dbutils(monkeypatch)
    code, out, err = call_main(main, argv, factory=KeywordPredictor)  # the rerun: nothing new in the input
    assert code == 0, err[-3000:]
    rerun = json.loads(out.strip().splitlines()[-1])
    assert rerun["status"] == "up_to_date"
    # The file holds the last run's summary, exactly the stdout line.
    assert json.loads((tmp_path / "results" / "score.json").read_text()) == rerun
    assert task_values.values == {"status": "up_to_date", "exit_code": 0, "summary": json.loads(json.dumps(rerun))}
    rows = spark.read.format("delta").load(runs)
    assertDataFrameEqual(
        rows.select("job", "status", "exit_code", "model", "input", "output"),
        spark.createDataFrame(
            [("score", s["status"], 0, "TinySentiment/1", s["input"], s["output"]) for s in (first, rerun)],
            "job string, status string, exit_code int, model string, input string, output string",
        ),
    )
    assert sorted(json.loads(r["summary"])["status"] for r in rows.collect()) == ["succeeded", "up_to_date"]
    assert rows.where("finished_at IS NULL OR seconds IS NULL").count() == 0


def test_kept_champion_can_exit_zero_for_schedulers_that_know_only_zero_or_not():
    winner, loser = {"f1": 0.9}, {"f1": 0.8}
    assert decide(loser, winner, "f1", 0.0, True).exit_code == 3  # the default: a scheduler can branch on 3
    kept = decide(loser, winner, "f1", 0.0, True, kept_champion_exit_code=0)
    assert (kept.outcome, kept.exit_code) == ("kept_champion", 0)
    assert decide(winner, loser, "f1", 0.0, True, kept_champion_exit_code=0).outcome == "promoted"
    with pytest.raises(ConfigError, match="'promotion.kept_champion_exit_code' must be 0 or 3, got 1"):
        load_config(EvaluateJobConfig, None, ["promotion.kept_champion_exit_code=1"])


def test_progress_lines_during_a_multi_partition_scoring_run(spark, tiny_model, tmp_path, caplog):
    from mlflow.tracking import MlflowClient
    from spark_sentiment.scoring.config import ScoreJobConfig
    from spark_sentiment.scoring.job import score_table
    from stubs import SlowFactory

    source = tmp_path / "reviews"
    reviews = spark.createDataFrame(ROWS_FOR_CLUSTER, "id int, body string").selectExpr("*", "body AS title")
    reviews.write.format("delta").save(str(source))
    sets = [f"input.path={source}", f"output.path={tmp_path / 'out'}", "input.text_columns=[body, title]"]
    sets += [f"model.uri={TINY}", "score.partitions=6", "progress_seconds=0.5"]
    with caplog.at_level("INFO", logger="spark_sentiment.scoring.progress"):
        summary = score_table(spark, load_config(ScoreJobConfig, None, sets), factory=SlowFactory(1.0))
    assert summary.rows_in == 40
    lines = [r.getMessage() for r in caplog.records if r.name == "spark_sentiment.scoring.progress"]
    assert len(lines) >= 3, lines  # six 1 s partitions on two cores: about 3 s of scoring
    done = [tuple(map(int, line.split("tasks ")[1].split(" ")[0].split("/"))) for line in lines]
    assert all(line.startswith(f"scoring delta:{source}: ") for line in lines), lines
    assert {total for _, total in done} == {6}  # the scoring stage's own tasks: the input's count is not in it
    assert [d for d, _ in done] == sorted(d for d, _ in done)  # never goes back
    assert done[-1][0] == done[-1][1] and "(100%)" in lines[-1]  # the last line: everything done
    assert any("ETA" in line for line in lines[:-1]), lines
    # The native engine counts texts as it goes; two text columns, so 80 texts are 40 rows.
    assert lines[-1].split(": ", 1)[1].startswith("40 of 40 rows (100%), ")
    history = MlflowClient().get_metric_history(summary.mlflow_run_id, "progress_fraction")
    assert [m.value for m in history][-1] == 1.0 and len(history) == len(lines)


def test_without_a_spark_context_progress_and_row_counts_step_aside():
    """A Spark Connect session has no SparkContext in the client (``sparkContext`` raises what
    ``pyspark.sql.connect.session.SparkSession`` raises): no progress lines, no row counter, no error."""
    from pyspark.errors import PySparkAttributeError
    from spark_sentiment.inference.engines import task_reports
    from spark_sentiment.inference.worker import Reports
    from spark_sentiment.scoring.progress import watch

    class ConnectLike:
        @property
        def sparkContext(self):
            raise PySparkAttributeError(
                errorClass="JVM_ATTRIBUTE_NOT_SUPPORTED", messageParameters={"attr_name": "sparkContext"}
            )

    with watch(ConnectLike(), "scoring", 0.1) as samples:
        pass
    assert samples == [] and task_reports(ConnectLike()) == Reports()
