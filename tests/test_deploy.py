"""Deployment examples are well-formed: each parses, points at files that exist as the platform resolves its
paths (no prefix stripping), and passes arguments that the job's own config loader accepts in the working
directory the job runs in (the part of a deployment that can be checked offline)."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from spark_sentiment.config.cli import parse_config
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.training.config import TrainJobConfig
from spark_sentiment.validation.config import EvaluateJobConfig
from support.data import REPO

DEPLOY = REPO / "deploy"
CONFIGS = {"train": TrainJobConfig, "evaluate": EvaluateJobConfig, "score": ScoreJobConfig}


def check_job_arguments(job: str, args: list[str], cwd: Path) -> None:
    """The job's config loads from these arguments exactly as the platform passes them, in the working
    directory the job runs in: ``--config`` relative to ``cwd``, else (a bare name) from the wheel."""
    before = Path.cwd()
    os.chdir(cwd)
    try:
        parse_config(args, CONFIGS[job], None, "check")
    finally:
        os.chdir(before)


def test_every_shipped_config_file_loads():
    for job, cls in CONFIGS.items():
        parse_config(["--config", f"conf/{job}.yaml"], cls, REPO / "conf" / "x.yaml", "check")


def test_databricks_bundle_runs_the_wheel_with_paths_the_cli_resolves(tmp_path):
    """Paths as the Databricks CLI resolves them: relative to databricks.yml, never stripped. The tasks run
    the wheel's entry points, so nothing outside the bundle folder needs syncing; the artifact is built in
    its ``path`` (the repository root) into ``dist/``, which is where the libraries point."""
    root = DEPLOY / "databricks"
    bundle = yaml.safe_load((root / "databricks.yml").read_text())
    assert bundle["bundle"]["name"] == "spark-sentiment"
    variables = {k: v["default"] for k, v in bundle["variables"].items()}
    artifact = bundle["artifacts"]["spark_sentiment_wheel"]
    built_in = (root / artifact["path"]).resolve()
    assert (built_in / "pyproject.toml").is_file() and "--wheel-dir dist ." in artifact["build"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    entry_points = {"train": "spark-sentiment-train", "evaluate": "spark-sentiment-evaluate"}
    entry_points["score"] = "spark-sentiment-score"

    jobs = bundle["resources"]["jobs"]
    assert set(jobs) == {"train_and_promote", "score_reviews"}
    seen = set()
    for job in jobs.values():
        keys = [t["task_key"] for t in job["tasks"]]
        assert len(keys) == len(set(keys))
        for task in job["tasks"]:
            assert {d["task_key"] for d in task.get("depends_on", [])} <= set(keys)
            assert "job_cluster_key" in task or "new_cluster" in task
            wheel_task = task["python_wheel_task"]
            assert wheel_task["package_name"] == "spark_sentiment" and wheel_task["entry_point"] in scripts
            name = next(k for k, v in entry_points.items() if v == wheel_task["entry_point"])
            for library in task["libraries"]:
                assert (root / library["whl"]).parent.resolve() == built_in / "dist", library
            params = [
                re.sub(r"\$\{var\.(\w+)\}", lambda m: variables[m.group(1)], p).replace("{{job.run_id}}", "123")
                for p in wheel_task["parameters"]
            ]
            experiment = next(p.split("=", 1)[1] for p in params if p.startswith("mlflow.experiment="))
            assert experiment.startswith("/"), "Databricks experiments are workspace paths"
            check_job_arguments(name, params, tmp_path)  # a task's working directory has no conf/
            seen.add(name)
    assert seen == {"train", "evaluate", "score"}
    train = jobs["train_and_promote"]["tasks"][0]["python_wheel_task"]["parameters"]
    assert "registry.request_id={{job.run_id}}" in train  # a retry registers no second version
    evaluate = jobs["train_and_promote"]["tasks"][1]["python_wheel_task"]["parameters"]
    assert "promotion.kept_champion_exit_code=0" in evaluate  # a kept champion does not fail the job run
    assert jobs["score_reviews"]["schedule"]["quartz_cron_expression"]
    prod = bundle["targets"]["prod"]
    assert prod["mode"] == "production" and prod["workspace"]["root_path"].startswith("/Workspace/")
    assert "service_principal_name" in prod["run_as"]


def test_fabric_spark_job_definition_reads_its_config_from_the_wheel(tmp_path):
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
    assert definition["executableFile"].endswith("/Files/spark-sentiment/jobs/score.py")
    # The driver's working directory is not the lakehouse: the config is named as the wheel holds it.
    check_job_arguments("score", shlex.split(definition["commandLineArguments"]), tmp_path)
    assert "--config score.yaml" in definition["commandLineArguments"]
    assert definition["environmentArtifactId"]  # the wheel lives in an Environment, which installs its deps
    assert not any(uri.endswith(".whl") for uri in definition["additionalLibraryUris"])
    assert "report.summary_path=abfss://" in definition["commandLineArguments"]


def test_airflow_dag_passes_environment_results_and_request_id():
    source = (DEPLOY / "airflow" / "spark_sentiment_dag.py").read_text()
    tree = ast.parse(source)  # valid Python; Airflow itself is not a dependency of this project
    calls = {
        node.func.id: node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert {"DAG", "BashOperator", "SparkSubmitOperator"} <= set(calls)
    # BashOperator: `cd {HOME} && ./spark-submit.sh jobs/X.py ...`, so --config is relative to the checkout.
    commands = [m.group(1) for m in re.finditer(r"spark-submit\.sh jobs/(\w+)\.py", source)]
    assert sorted(commands) == ["evaluate", "train"]
    for job in commands:
        check_job_arguments(job, ["--config", f"conf/{job}.yaml"], REPO)
    submit = {k.arg: k.value for k in calls["SparkSubmitOperator"].keywords}
    assert {"env_vars", "application_args"} <= set(submit) and "do_xcom_push" not in submit
    args = [ast.unparse(a).strip("f'\"").replace("{HOME}", str(REPO)) for a in submit["application_args"].elts]
    args = [a.replace("{RESULTS}", "/results").replace("{{{{ run_id }}}}", "manual__1") for a in args]
    check_job_arguments("score", args, REPO)
    assert "registry.request_id={{{{ run_id }}}}" in source and "skip_on_exit_code=3" in source
    assert source.count("env=ENV") == 2 and "MLFLOW_TRACKING_URI" in source


DAGBAG = """
import json
from airflow.models import DagBag
bag = DagBag(dag_folder="deploy/airflow")  # examples off through AIRFLOW__CORE__LOAD_EXAMPLES
errors = {path: text.strip().splitlines()[-1] for path, text in bag.import_errors.items()}
tasks = {dag.dag_id: {t.task_id: type(t).__name__ for t in dag.tasks} for dag in bag.dags.values()}
print(json.dumps({"errors": errors, "tasks": tasks}))
"""


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    """The scheduler's own Python, which has neither pyspark nor delta-spark: a venv with Airflow and its
    Spark provider from PyPI (``tests/airflow-requirements.txt``, about 140 packages, a minute here), built
    once per checkout by ``make airflow-env`` (which ``.ci/run`` calls before the tests)."""
    subprocess.run(["make", "-s", "airflow-env"], cwd=REPO, check=True, timeout=900)
    return REPO / ".venv-airflow" / "bin" / "python"


@pytest.mark.slow
def test_airflow_dags_load_in_airflows_own_dagbag(airflow_python, tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(REPO / "lib")}
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    result = subprocess.run(
        [str(airflow_python), "-c", DAGBAG], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {
        "errors": {},
        "tasks": {
            "spark_sentiment_train_and_promote": {"train": "BashOperator", "evaluate": "BashOperator"},
            "spark_sentiment_score": {"score": "SparkSubmitOperator"},
        },
    }


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO).as_posix() for p in DEPLOY.rglob("*") if p.is_file()))
def test_deploy_files_are_documented(path):
    assert path in (REPO / "docs" / "deployment.md").read_text()
