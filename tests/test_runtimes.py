"""The runtime profiles (``runtimes/*.toml``) as data: each names its source and its exact package set, and the
wheel's declared ranges accept every one of them as it is. What the profiles' venvs do end to end is the
runtime matrix's business (``make test-runtimes``; CI runs Fabric 1.3 and latest)."""

from __future__ import annotations

import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from support import runtimes
from support.data import REPO
from support.processes import PYTHON

PROFILES = runtimes.profile_names()
REQUIRED = [
    "fabric-1.3",
    "fabric-2.0",
    "databricks-16.4-lts-ml",
    "databricks-17.3-lts-ml",
    "databricks-18-lts-ml",
    "databricks-serverless-v4",
    "latest",
]
# what every profile must pin, from the runtime or as what the wheel adds there
IMPORTED = [
    "pyspark",
    "mlflow-skinny",
    "transformers",
    "tokenizers",
    "safetensors",
    "torch",
    "accelerate",
    "datasets",
    "pandas",
    "pyarrow",
    "numpy",
    "scikit-learn",
    "matplotlib",
    "psutil",
    "pyyaml",
]


def project() -> dict:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]


def test_the_runtimes_the_issue_names_have_profiles():
    assert set(REQUIRED) <= set(PROFILES), set(REQUIRED) - set(PROFILES)


@pytest.mark.parametrize("name", PROFILES)
def test_profile_is_complete_and_cites_its_source(name):
    profile = runtimes.load_profile(name)
    data = profile.data
    assert data["name"] == name
    for key in ("platform", "runtime", "source", "python", "java", "spark"):
        assert data.get(key), f"{name}: {key} missing"
    assert "2026-" in data["source"], f"{name}: the source must say when it was read"
    assert data["python"] in ("3.11", "3.12", "3.13")
    missing = [package for package in IMPORTED if package not in profile.pins]
    assert not missing, f"{name}: no version for {missing}"
    assert profile.pins["pyspark"] == data["spark"]
    assert "delta-spark" in profile.pins or data.get("remote_only"), f"{name}: a JVM runtime needs delta-spark"
    for version in profile.pins.values():
        assert version[0].isdigit() and "*" not in version, f"{name}: {version!r} is not an exact version"
    # the runtime's own packages and what the wheel adds there are different things
    assert not set(data.get("packages", {})) & set(data.get("added", {}))
    if data.get("added"):
        assert "added" in data.get("differences", {}), f"{name}: say why packages are added"


@pytest.mark.parametrize("name", PROFILES)
def test_the_wheel_ranges_accept_the_runtime_as_it_is(name):
    """What pip checks first: every requirement of the wheel (and of [spark], [mlflow]) that names a package
    of the profile accepts the profile's version, and the profile's Python is one the wheel takes."""
    profile = runtimes.load_profile(name)
    meta = project()
    assert SpecifierSet(meta["requires-python"]).contains(f"{profile.data['python']}.0")
    requirements = [Requirement(r) for r in meta["dependencies"]]
    requirements += [Requirement(r) for r in meta["optional-dependencies"]["spark"]]
    pins = {runtimes.canonical(n): v for n, v in profile.pins.items()}
    refused = [
        f"{req} refuses {pins[runtimes.canonical(req.name)]}"
        for req in requirements
        if runtimes.canonical(req.name) in pins and not req.specifier.contains(pins[runtimes.canonical(req.name)], True)
    ]
    assert not refused, f"{name}: {refused}"


def test_delta_jars_for_each_profile_are_the_ones_maven_has():
    from spark_sentiment.core.spark_conf import delta_maven_coordinate

    coordinates = {
        name: delta_maven_coordinate(p.data["spark"], p.data["delta"])
        for name in PROFILES
        if (p := runtimes.load_profile(name)).data.get("delta")
    }
    assert coordinates["fabric-1.3"] == "io.delta:delta-spark_2.12:3.2.1"
    assert coordinates["databricks-16.4-lts-ml"] == "io.delta:delta-spark_2.12:3.2.0"
    assert coordinates["databricks-17.3-lts-ml"] == "io.delta:delta-spark_2.13:4.0.0"
    assert coordinates["databricks-18-lts-ml"] == "io.delta:delta-spark_4.1_2.13:4.1.0"
    assert coordinates["fabric-2.0"] == "io.delta:delta-spark_4.1_2.13:4.2.0"
    assert coordinates["latest"] == "io.delta:delta-spark_4.2_2.13:4.4.0"


def test_latest_is_the_tested_set():
    """``latest`` pins exactly what constraints.txt (the suite's own environment) has."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            package, version = line.split("==")
            pins[runtimes.canonical(package)] = version
    latest = runtimes.load_profile("latest")
    differ = {
        n: (v, pins.get(runtimes.canonical(n))) for n, v in latest.pins.items() if pins.get(runtimes.canonical(n)) != v
    }
    assert not differ, differ


def test_the_matrix_table_names_the_cpu_and_every_cell():
    runs = {"a": {"venv": ("ok", 1.0), "train": ("FAIL", 2.5)}, "b": {"venv": ("ok", 0.1)}}
    text = runtimes.table(runs)
    assert "| train" in text and "FAIL 2.5s" in text and "ok 0.1s" in text
    assert text.splitlines()[-1].rstrip().endswith("-  |") or "| -" in text  # b never trained: a dash
    assert runtimes.cpu_model()


def test_a_connect_client_older_than_spark_4_is_refused_with_the_reason(monkeypatch):
    """Spark 3.5's Connect DataFrame has no localCheckpoint (the matrix runs the real 3.5 client: 'connect
    refused'); the check reads the client's API, so this pyspark passes and one without the method does not."""
    from pyspark.sql.connect.dataframe import DataFrame
    from spark_sentiment.core.session import connect_client_problem

    assert connect_client_problem() is None
    monkeypatch.delattr(DataFrame, "localCheckpoint")
    assert "has no DataFrame.localCheckpoint" in connect_client_problem()


def test_the_runtime_matrix_is_one_test_per_profile_and_step_and_make_test_leaves_it_out():
    """What CI selects: each step of each profile its own test, in the path's order, and the move's steps, all
    under the marker ``make test`` excludes."""
    command = [PYTHON, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "runtimes"]
    command += ["--runtimes", "fabric-1.3 latest", "--move", "latest:fabric-1.3", "tests/test_runtime_matrix.py"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    ids = [line.split("::", 1)[1] for line in result.stdout.splitlines() if "::" in line]
    for profile in ("fabric-1.3", "latest"):
        mine = [i for i in ids if f"[{profile}" in i]
        assert mine[:4] == [f"test_{s}[{profile}]" for s in ("venv", "install", "train", "ingest")]
        assert f"test_merge[{profile}-mlflow]" in mine and f"test_connect_score[{profile}]" in mine
    assert ids.index("test_connect_score[fabric-1.3]") < ids.index("test_venv[latest]")  # a profile at a time
    assert "test_move_labels_in_target[latest:fabric-1.3-mlflow]" in ids
    assert len(ids) == 2 * 17 + 7
    import test_runtime_matrix

    assert test_runtime_matrix.pytestmark == pytest.mark.runtimes
    assert 'not runtimes"' in next(line for line in (REPO / "Makefile").open() if "-m pytest -m" in line)
    with pytest.raises(ValueError, match="no runtime profile 'fabric-9'"):
        runtimes.load_profile("fabric-9")
