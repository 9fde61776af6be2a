"""End to end on a real Spark standalone cluster started here: a master and two workers on 127.0.0.1.

The job is submitted with spark-submit.sh; executors are separate JVM/Python processes and receive the
model package through Spark (SparkFiles), which the test checks in the workers' own work folders.
The cluster's catalog (a Hive metastore and warehouse given as confs, as spark-defaults.conf or
hive-site.xml would) is the one the job uses. A second spark-submit (a new session, local master, same
catalog confs) then queries the scored table through that catalog with SQL.

For hosts that lack the project's venv, a packed environment (venv-pack) is shipped with ``--archives``
and the executors run ``./env/bin/python`` from it while the driver keeps its own interpreter.

The cluster and its submits run in the background from the start of the session (``cluster_runs`` in
``tests/out_of_process.py``); these tests run last and check what they did.
"""

from __future__ import annotations

import json
import sys

import pytest

pytestmark = pytest.mark.slow


def test_score_on_standalone_cluster_then_query_from_new_session(cluster_runs):
    result = cluster_runs.score.result()
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["rows_in"], summary["rows_scored"], summary["null_texts"]) == (40, 38, 2)
    assert summary["output"] == "table cluster_scored"
    # The table and its metastore entry are in the cluster's catalog; no local catalog was made.
    catalog, data = cluster_runs.catalog, cluster_runs.data
    assert (catalog / "warehouse" / "cluster_scored" / "_delta_log").is_dir()
    assert (catalog / "metastore").is_dir()
    assert not (data / "warehouse").exists() and not (data / "metastore_db").exists()

    # Executors ran in the workers' own folders, and each one fetched the model package from Spark. (The
    # master numbers applications as they come: this job was its first, app-<date>-0000.)
    executor_dirs = [d for w in cluster_runs.workers for d in w.glob("app-*-0000/*") if d.is_dir()]
    assert len(executor_dirs) >= 2, executor_dirs
    shipped = [
        d for d in executor_dirs if any(p.name.endswith(".zip") and "TinySentiment" in p.name for p in d.iterdir())
    ]
    assert len(shipped) >= 2, [sorted(p.name for p in d.iterdir()) for d in executor_dirs]

    query = cluster_runs.query.result()
    assert query.returncode == 0, query.stderr[-4000:]
    lines = query.stdout.strip().splitlines()[:-1]  # the last line is the summary
    rows = [json.loads(line) for line in lines if line.startswith("{")]
    assert sum(r["n"] for r in rows) == 40
    assert {r["label"] for r in rows} <= {None, "NEGATIVE", "POSITIVE"}
    assert sum(r["n"] for r in rows if r["label"] is None) == 2


def test_executors_run_a_shipped_python_environment(cluster_runs):
    result = cluster_runs.shipped.result()
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["rows_in"], summary["rows_scored"], summary["null_texts"]) == (40, 38, 2)

    # Every Python worker ran the unpacked archive's interpreter, inside an executor's work folder, and
    # imported pandas from it; none ran the project's venv.
    seen = [json.loads(p.read_text()) for p in cluster_runs.records.glob("*.json")]
    assert len(seen) >= 2, seen
    work = [str(w.resolve()) for w in cluster_runs.workers]
    for record in seen:
        assert record["prefix"].endswith("/env") and any(record["prefix"].startswith(w) for w in work), record
        assert record["pandas"].startswith(record["prefix"]) and not record["pandas"].startswith(sys.prefix)
