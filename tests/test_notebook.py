"""The example notebook (``examples/sentiment_walkthrough.ipynb``) runs headless, top to bottom, in a kernel
of this environment, as a user would run it: its own local Spark session with Delta, its own MLflow store and
data dir. Small sizes are injected after its ``parameters`` cell, as papermill does; every other cell runs as
committed. The committed file carries no outputs."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell
from support.data import IMDB, REPO

NOTEBOOK = REPO / "examples" / "sentiment_walkthrough.ipynb"


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_the_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert [c for c in code_cells(nb) if c.outputs or c.execution_count is not None] == []


@pytest.mark.slow
@pytest.mark.skipif(not (IMDB / "train.parquet").exists(), reason="needs IMDB parquet beside the repo")
def test_the_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    nb.cells.insert(
        at + 1,
        new_code_cell(
            f"DATA = {str(IMDB)!r}\n"
            "TRAIN_ROWS, EVAL_ROWS = 64, 16\n"
            "EPOCHS, MAX_STEPS, MAX_LENGTH = 1, 4, 64\n"
            'MODEL_NAME = "NotebookSentiment"\n'
            "SCORE_ROWS = 24"
        ),
    )
    # The kernel inherits this environment: a data dir (warehouse, metastore) and MLflow store of its own.
    monkeypatch.setenv("SPARK_SENTIMENT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    (tmp_path / "mlflow").mkdir()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    def text_of(cell) -> str:
        return "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)

    cells = {cell.source.splitlines()[0]: cell for cell in code_cells(nb) if cell.source}
    errors = [o for cell in code_cells(nb) for o in cell.outputs if o.output_type == "error"]
    assert errors == []
    predicted = text_of(cells["import mlflow"])
    assert "POSITIVE" in predicted or "NEGATIVE" in predicted, predicted
    scored = text_of(cells["from spark_sentiment.io.ingest import read_reviews"])
    assert "('succeeded', 24, 'NotebookSentiment/1')" in scored, scored
    counts = text_of(cells["counts = spark.sql("])
    assert "label" in counts and "reviews" in counts, counts
    plot = cells["import matplotlib.pyplot as plt"]
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)
