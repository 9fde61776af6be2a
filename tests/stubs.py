"""Predictor factories for tests, shipped to Spark's Python workers by value (see conftest).

Any callable ``(model_dir, options, gpu_address) -> object with predict(Series) -> DataFrame`` can score:
these stand in where a real model adds nothing, or wrap the real one to inject a fault.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from spark_sentiment.inference.predictor import Predictor
from spark_sentiment.inference.text_policy import scorable_mask

POSITIVE_WORDS = ("love", "great", "wonderful", "brilliant", "excellent", "best", "beautiful")


class KeywordPredictor:
    """POSITIVE when the text holds a positive word, else NEGATIVE (score 0.9); null for blank text."""

    def __init__(self, model_dir: str, options, gpu_address: str | None = None) -> None:
        self.model_dir = model_dir

    def predict(self, texts: pd.Series) -> pd.DataFrame:
        valid = scorable_mask(texts)
        positive = texts.fillna("").str.lower().str.contains("|".join(POSITIVE_WORDS))
        labels = positive.map({True: "POSITIVE", False: "NEGATIVE"}).where(valid, None)
        return pd.DataFrame({"label": labels.astype(object), "score": pd.Series(0.9, index=texts.index).where(valid)})


@dataclass(frozen=True)
class ExitOnceFactory:
    """The real predictor, but the first Python worker to build one exits first (once per marker file),
    as an OOM-killed or crashed worker looks to Spark."""

    marker: str

    def __call__(self, model_dir: str, options, gpu_address: str | None = None) -> Predictor:
        try:
            Path(self.marker).touch(exist_ok=False)
        except FileExistsError:
            return Predictor(model_dir, options, gpu_address)
        os._exit(17)


@dataclass(frozen=True)
class MarkingFactory:
    """The keyword predictor, built only after touching ``marker``: a test that finds no marker knows no
    row was scored."""

    marker: str

    def __call__(self, model_dir: str, options, gpu_address: str | None = None) -> KeywordPredictor:
        Path(self.marker).touch()
        return KeywordPredictor(model_dir, options, gpu_address)


@dataclass(frozen=True)
class InterpreterRecordingFactory:
    """The keyword predictor; each Python worker that builds one first records its interpreter and where
    it imported pandas from (one JSON file per worker process under ``folder``)."""

    folder: str

    def __call__(self, model_dir: str, options, gpu_address: str | None = None) -> KeywordPredictor:
        import json
        import sys

        record = {"executable": sys.executable, "prefix": sys.prefix, "pandas": pd.__file__}
        Path(self.folder, f"{os.getpid()}.json").write_text(json.dumps(record))
        return KeywordPredictor(model_dir, options, gpu_address)


@dataclass(frozen=True)
class SlowFactory:
    """The keyword predictor, taking ``seconds`` per batch: a scoring run long enough to watch."""

    seconds: float

    def __call__(self, model_dir: str, options, gpu_address: str | None = None) -> KeywordPredictor:
        import time

        inner = KeywordPredictor(model_dir, options, gpu_address)

        class Slow:
            def predict(self, texts: pd.Series) -> pd.DataFrame:
                time.sleep(seconds)
                return inner.predict(texts)

        seconds = self.seconds
        return Slow()


@dataclass(frozen=True)
class SteadyFactory:
    """The keyword predictor, taking ``seconds`` per row in mini-batches of ``batch`` rows and reporting each
    mini-batch to ``progress`` as the real predictor does: a task that runs long enough to watch its rows rise."""

    seconds: float
    batch: int = 2

    def __call__(self, model_dir: str, options, gpu_address: str | None = None):
        import time

        inner = KeywordPredictor(model_dir, options, gpu_address)
        seconds, size = self.seconds, self.batch

        class Steady:
            def predict(self, texts: pd.Series, progress=None) -> pd.DataFrame:
                for start in range(0, len(texts), size):
                    time.sleep(seconds * len(texts.iloc[start : start + size]))
                    if progress is not None:
                        progress(len(texts.iloc[start : start + size]))
                return inner.predict(texts)

        return Steady()
