"""The wheel as a managed runtime gets it: built from this checkout, resolved by pip against a Python that
already has Spark, Delta, MLflow and torch (as Databricks/Fabric runtimes do), installed, and its console
entry points run. Nothing is downloaded: pip runs with ``--no-index``, so every dependency it needs must be
satisfied by what the runtime already has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from support.data import REPO
from support.processes import PYTHON

pytestmark = pytest.mark.slow
OWN = ("spark_sentiment", "spark-sentiment", "__editable__")


def run(args: list, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what the runtime itself has
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    built = run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, REPO], dist)
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = dist.glob("spark_sentiment-*.whl")
    return found


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Path:
    """A fresh venv whose preinstalled packages are this test environment's (Spark, Delta, MLflow, torch ...)
    without spark-sentiment itself: a stand-in for a cluster runtime image, without copying gigabytes."""
    root = tmp_path_factory.mktemp("runtime")
    made = run([sys.executable, "-m", "venv", "--without-pip", root / "venv"], root)
    assert made.returncode == 0, made.stderr
    preinstalled = root / "preinstalled"
    preinstalled.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(OWN) and entry.suffix != ".pth":
            (preinstalled / entry.name).symlink_to(entry)
    site = Path(
        run(
            [root / "venv/bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root
        ).stdout.strip()
    )
    (site / "runtime.pth").write_text(f"{preinstalled}\n")
    return root


def test_wheel_carries_configs_entry_points_and_ranges(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = whl.read(info).decode()
        entry_points = whl.read(info.replace("METADATA", "entry_points.txt")).decode()
    for config in ("score.yaml", "train.yaml", "evaluate.yaml", "demo.yaml", "demo-score.yaml"):
        assert f"spark_sentiment/config/defaults/{config}" in names
    for script in ("train", "score", "evaluate", "ingest", "sql"):
        assert f"spark-sentiment-{script} = " in entry_points
    prefix = "Requires-Dist: "
    requires = [line.removeprefix(prefix) for line in metadata.splitlines() if line.startswith(prefix)]
    assert not [r for r in requires if "==" in r.split(";")[0]], requires  # ranges, never exact pins
    spark_deps = [r for r in requires if r.startswith(("pyspark", "delta-spark"))]
    assert spark_deps and all('extra == "spark"' in r for r in spark_deps), spark_deps


def test_pip_keeps_the_runtime_spark_delta_and_mlflow(wheel, runtime):
    python = runtime / "venv/bin/python"
    preinstalled = run([python, "-c", "import pyspark, delta, mlflow, torch"], runtime)
    assert preinstalled.returncode == 0, preinstalled.stderr[-2000:]
    report = runtime / "report.json"
    resolved = run([python, "-m", "pip", "install", "--dry-run", "--no-index", "--report", report, wheel], runtime)
    assert resolved.returncode == 0, resolved.stdout[-2000:] + resolved.stderr[-3000:]
    to_install = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert to_install == ["spark-sentiment"]  # Spark, Delta, MLflow, torch ...: the runtime's own, kept


def test_entry_points_from_the_wheel_run(wheel, runtime, tmp_path):
    python = runtime / "venv/bin/python"
    installed = run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], runtime)
    assert installed.returncode == 0, installed.stderr[-3000:]
    where = run([python, "-c", "import spark_sentiment; print(spark_sentiment.__file__)"], tmp_path)
    assert where.stdout.startswith(str(runtime / "venv")), where.stdout + where.stderr

    bin_dir = runtime / "venv/bin"
    helped = run([bin_dir / "spark-sentiment-score", "--help"], tmp_path, timeout=300)
    assert helped.returncode == 0 and "--config" in helped.stdout, helped.stderr[-2000:]
    # The packaged default config is read (input.table from score.yaml) before the bad override fails.
    bad = run([bin_dir / "spark-sentiment-score", "--set", "output.mode=sideways"], tmp_path, timeout=300)
    assert bad.returncode == 2, bad.stderr[-2000:]
    assert bad.stderr.strip().splitlines()[-1].startswith("error: config key 'output.mode'"), bad.stderr[-2000:]
    # A bare config name is found in the package from any working directory (tmp_path has no conf/).
    demo = run([bin_dir / "spark-sentiment-train", "--config", "demo.yaml", "--set", "train.epochs=0"], tmp_path)
    assert demo.returncode == 2, demo.stderr[-2000:]
    assert demo.stderr.strip().splitlines()[-1].startswith("error: config key 'train.epochs'"), demo.stderr[-2000:]


# What an executor needs beside pyspark for the native UDF with a predictor of its own (the cluster test ships
# exactly numpy, pandas and pyarrow in a packed environment): everything else is the driver's.
DRIVER_ONLY = ["yaml", "torch", "transformers", "mlflow", "datasets", "evaluate", "accelerate", "sklearn"]
DRIVER_ONLY += ["matplotlib", "sentencex", "psutil", "delta", "safetensors", "tokenizers"]


def test_the_worker_side_imports_without_the_driver_only_packages():
    code = f"import sys\nfor name in {DRIVER_ONLY!r}:\n    sys.modules[name] = None\n"
    code += "import spark_sentiment.inference.worker\n"
    env = {**os.environ, "PYTHONPATH": str(REPO / "lib")}
    result = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
