"""Deployment examples are well-formed: each parses, points at files that exist, and passes arguments that
the job's own config loader accepts (the part of a deployment that can be checked offline)."""

from __future__ import annotations

import ast
import json
import re
import shlex

import pytest
import yaml
from conftest import REPO
from spark_sentiment.config.cli import parse_config
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.training.config import TrainJobConfig
from spark_sentiment.validation.config import EvaluateJobConfig

DEPLOY = REPO / "deploy"
CONFIGS = {"train.py": TrainJobConfig, "evaluate.py": EvaluateJobConfig, "score.py": ScoreJobConfig}


def check_job_arguments(job_file: str, args: list[str]) -> None:
    """The job exists and its config loads with these arguments (``--config`` relative to the repo)."""
    name = job_file.rsplit("/", 1)[-1]
    assert (REPO / "jobs" / name).is_file(), job_file
    args = [re.sub(r"^(\.\./)+|^\{HOME\}/", "", a) for a in args]  # paths as seen from the repo root
    parse_config(args, CONFIGS[name], REPO / "conf" / name.replace(".py", ".yaml"), "check")


def test_every_shipped_config_file_loads():
    for job, cls in CONFIGS.items():
        parse_config(["--config", f"conf/{job.replace('.py', '.yaml')}"], cls, REPO / "conf" / "x.yaml", "check")


def test_databricks_bundle_is_well_formed():
    root = DEPLOY / "databricks"
    bundle = yaml.safe_load((root / "databricks.yml").read_text())
    assert bundle["bundle"]["name"] == "spark-sentiment"
    variables = {k: v["default"] for k, v in bundle["variables"].items()}
    assert set(bundle["targets"]) == {"dev", "prod"}
    jobs = bundle["resources"]["jobs"]
    assert set(jobs) == {"train_and_promote", "score_reviews"}
    seen = set()
    for job in jobs.values():
        keys = [t["task_key"] for t in job["tasks"]]
        assert len(keys) == len(set(keys))
        for task in job["tasks"]:
            assert {d["task_key"] for d in task.get("depends_on", [])} <= set(keys)
            assert "job_cluster_key" in task or "new_cluster" in task
            python_file = task["spark_python_task"]["python_file"]
            assert (root / python_file).resolve().is_file(), python_file
            params = [
                re.sub(r"\$\{var\.(\w+)\}", lambda m: variables[m.group(1)], p)
                for p in task["spark_python_task"]["parameters"]
            ]
            check_job_arguments(python_file, params)
            seen.add(python_file.rsplit("/", 1)[-1])
    assert seen == {"train.py", "evaluate.py", "score.py"}
    assert jobs["score_reviews"]["schedule"]["quartz_cron_expression"]


def test_fabric_spark_job_definition_is_well_formed():
    definition = json.loads((DEPLOY / "fabric" / "SparkJobDefinitionV1.json").read_text())
    assert set(definition) == {
        "executableFile",
        "defaultLakehouseArtifactId",
        "mainClass",
        "additionalLakehouseIds",
        "retryPolicy",
        "commandLineArguments",
        "additionalLibraryUris",
        "language",
        "environmentArtifactId",
    }
    assert definition["language"] == "Python"
    assert definition["executableFile"].endswith("/jobs/score.py")
    check_job_arguments("score.py", shlex.split(definition["commandLineArguments"]))
    assert any(uri.endswith(".whl") for uri in definition["additionalLibraryUris"])


def test_airflow_dag_is_well_formed():
    source = (DEPLOY / "airflow" / "spark_sentiment_dag.py").read_text()
    tree = ast.parse(source)  # valid Python; Airflow itself is not a dependency of this project
    calls = {
        node.func.id: node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert {"DAG", "BashOperator", "SparkSubmitOperator"} <= set(calls)
    for match in re.finditer(r"spark-submit\.sh (jobs/\w+\.py) ([^\"]*)\"", source):
        check_job_arguments(match.group(1), shlex.split(match.group(2)))
    submit = {k.arg: k.value for k in calls["SparkSubmitOperator"].keywords}
    args = [ast.unparse(a).strip("f'\"") for a in submit["application_args"].elts]
    check_job_arguments("score.py", args)
    assert "skip_on_exit_code=3" in source  # a refused candidate skips, never fails, the DAG run


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO).as_posix() for p in DEPLOY.rglob("*") if p.is_file()))
def test_deploy_files_are_documented(path):
    assert path in (REPO / "docs" / "deployment.md").read_text()
