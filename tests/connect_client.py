"""Several jobs in one Spark Connect client: a plain Python process (no JVM) whose only Spark is
``$SPARK_REMOTE`` runs the jobs' entry functions one after another, as a notebook attached to a Connect
server would (``tests/test_connect.py``). One process and one Connect session for all of them, instead of
a cold interpreter and a new server-side session per job.

    python tests/connect_client.py STEPS.json

``STEPS.json`` is a list of ``[job, argv]``, job one of ``score``, ``evaluate`` (their packaged default
configs, as ``jobs/score.py`` and ``jobs/evaluate.py``) or ``sql`` (``jobs/sql.py``). The last stdout line
is a JSON list with one ``{"code", "stdout", "stderr"}`` per step.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys

from spark_sentiment.config.cli import packaged_config
from spark_sentiment.inference.sql import main as sql_main
from spark_sentiment.scoring.job import main as score_main
from spark_sentiment.validation.job import main as evaluate_main

JOBS = {
    "score": lambda argv: score_main(argv, default_config=packaged_config("score.yaml")),
    "evaluate": lambda argv: evaluate_main(argv, default_config=packaged_config("evaluate.yaml")),
    "sql": sql_main,
}


def run(steps: list[tuple[str, list[str]]]) -> list[dict]:
    results = []
    for job, argv in steps:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = JOBS[job](argv)
        results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    return results


if __name__ == "__main__":
    # The jobs' log lines go to this process's stderr (not into the first step's captured output).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with open(sys.argv[1]) as handle:
        print(json.dumps(run(json.load(handle))))
