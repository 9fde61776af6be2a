"""Where the project keeps its local state (warehouse, metastore, MLflow store, shipped model copies).

``SPARK_SENTIMENT_DATA`` chooses the folder; ``spark-submit.sh`` and the Makefile set it to the repo's
``data/``. Nothing is created at import.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The project data folder: ``$SPARK_SENTIMENT_DATA`` or ``./data`` under the working directory."""
    return Path(os.environ.get("SPARK_SENTIMENT_DATA") or "data").resolve()


def default_imdb_source() -> str:
    """``$IMDB_DATA`` (a folder with train/test/unsup.parquet) when set, else the hub dataset ``hf:imdb``."""
    return os.environ.get("IMDB_DATA") or "hf:imdb"
