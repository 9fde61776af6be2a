"""Which tokens of a long review a model reads: the truncation window.

One definition for every path: training tokenizes with :func:`encode`, the native engine (and so the SQL
function) tokenizes with it on the executors, and the logged MLflow model carries this file in its
``code/`` folder as ``spark_sentiment_window.py`` and names it as its pyfunc ``loader_module``, so
``mlflow.pyfunc.load_model`` and ``mlflow.pyfunc.spark_udf`` (the ``mlflow`` engine) read a review through
the same window as the model was trained on. The window is recorded as the pyfunc flavor's
``model_config`` (keys ``window``, ``max_length``, ``head_tokens``).

Strategies: ``head`` keeps the first tokens, ``tail`` the last, ``head_tail`` the first ``head_tokens``
and the rest from the end (Sun et al. 2019, *How to Fine-Tune BERT for Text Classification*: the end of a
review often holds its verdict). Reviews that fit are read whole under every strategy.

Self-contained on purpose (it travels alone inside logged models): standard library, numpy and pandas at
import time; torch and mlflow only inside the functions that need them.
"""

from __future__ import annotations

import inspect
import math
import sys
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

STRATEGIES = ("head", "tail", "head_tail")
CODE_MODULE = "spark_sentiment_window"  # this file's name inside a logged model's code/ folder
# Long reviews are cut to this many characters per kept token at each end before tokenizing, so a
# pathological multi-megabyte text costs no more than a long review. A WordPiece/SentencePiece token of
# ordinary text is far shorter; a cut inside a word only changes tokens that are dropped anyway.
CHARS_PER_TOKEN = 32
# The model config attributes (config.json) holding the calibration fitted at training: logits are divided by
# a temperature before the softmax, so probabilities are calibrated; the label never changes. The first holds
# the temperature at the reference length (the whole temperature when the second is absent); the second how it
# changes with the number of tokens a text is read as (:class:`Temperature`). Both absent: 1.
TEMPERATURE_ATTRIBUTE = "spark_sentiment_temperature"
TEMPERATURE_LENGTH_ATTRIBUTE = "spark_sentiment_temperature_length"
INVERSE_TEMPERATURE_RANGE = (0.05, 20.0)  # 1/T is kept inside this, whatever the length


@dataclass(frozen=True)
class Temperature:
    """The calibration temperature of a text read as ``n`` tokens (special tokens included):
    ``1 / T(n) = 1 / value + slope * ln(clip(n, low, high) / reference)``.

    A model is surer of itself on a long review than on a short sentence, and not by the same factor as it is
    right: one temperature fitted on a mix of reviews and sentences softens the reviews too much and the
    sentences too little. The inverse temperature is linear in the log length, so the fit stays a convex
    problem (:func:`..monitoring.calibration.fit_temperature_by_length`); lengths are clipped to those the fit
    saw, so it never extrapolates. ``slope`` 0 is plain temperature scaling (Guo et al. 2017).
    """

    value: float = 1.0
    slope: float = 0.0
    reference: float = 64.0
    low: int = 1
    high: int = 1 << 20

    def __post_init__(self) -> None:
        if not (self.value > 0 and math.isfinite(self.value) and math.isfinite(self.slope)):
            raise ValueError(f"temperature must be positive and finite, got value={self.value} slope={self.slope}")
        if not 0 < self.low <= self.high or not self.reference > 0:
            raise ValueError(f"temperature lengths must satisfy 0 < low <= high and reference > 0, got {self}")

    def per_row(self, lengths: Any) -> np.ndarray:
        """The temperature of each text, from its token count (float64)."""
        lengths = np.clip(np.asarray(lengths, dtype=np.float64), self.low, self.high)
        inverse = 1.0 / self.value + self.slope * np.log(lengths / self.reference)
        return 1.0 / np.clip(inverse, *INVERSE_TEMPERATURE_RANGE)

    def probabilities(self, logits: Any, lengths: Any) -> np.ndarray:
        """``softmax(logits / T(n))`` row by row (float32), ``lengths`` each row's token count."""
        scaled = np.asarray(logits, dtype=np.float64) / self.per_row(lengths)[:, None]
        exp = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": float(self.value),
            "slope": float(self.slope),
            "reference": float(self.reference),
            "low": int(self.low),
            "high": int(self.high),
        }

    @classmethod
    def from_dict(cls, value: Any) -> Temperature:
        """From :meth:`to_dict`'s form, or a bare number (a length-free temperature); None or 0: 1."""
        if isinstance(value, Mapping):
            return cls(**{key: value[key] for key in ("value", "slope", "reference", "low", "high") if key in value})
        return cls(float(value)) if value else cls()

    def config_attributes(self) -> dict[str, Any]:
        """The model config attributes that record this temperature (:meth:`of_config` reads them back)."""
        length = None if self.slope == 0 else {key: v for key, v in self.to_dict().items() if key != "value"}
        return {TEMPERATURE_ATTRIBUTE: float(self.value), TEMPERATURE_LENGTH_ATTRIBUTE: length}

    @classmethod
    def of_config(cls, config: Any) -> Temperature:
        """The temperature a transformers model config (or its ``config.json`` dict) records."""

        def read(name: str) -> Any:
            return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)

        value, length = read(TEMPERATURE_ATTRIBUTE), read(TEMPERATURE_LENGTH_ATTRIBUTE)
        return cls.from_dict({"value": float(value) if value else 1.0, **(length or {})})


def source() -> str:
    """This module's source text, what a logged model carries in ``code/``. Read through the import system,
    so it works where the package is imported from a zip (``spark-submit --py-files``), not only a folder."""
    return inspect.getsource(sys.modules[__name__])


@dataclass(frozen=True)
class Window:
    """A truncation window: ``strategy`` over at most ``max_length`` tokens (special tokens included).

    ``head_tokens`` applies to ``head_tail``: tokens kept from the start; None = a quarter of the tokens
    left after the special ones (128 of 510 at 512, Sun et al.'s head-128 + tail-382).
    """

    strategy: str = "head"
    max_length: int = 512
    head_tokens: Optional[int] = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"truncation must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if not 8 <= int(self.max_length) <= 8192:
            raise ValueError(f"max_length must be in [8, 8192], got {self.max_length}")
        if self.head_tokens is not None and not 0 <= int(self.head_tokens) < int(self.max_length):
            raise ValueError(f"head_tokens must be in [0, max_length), got {self.head_tokens}")

    def split(self, body: int) -> tuple[int, int]:
        """Tokens kept from the start and from the end of a review longer than ``body`` tokens."""
        if self.strategy == "head":
            return body, 0
        if self.strategy == "tail":
            return 0, body
        head = body // 4 if self.head_tokens is None else min(int(self.head_tokens), body)
        return head, body - head

    def to_config(self) -> dict[str, Any]:
        """The model_config entries that record this window with a logged model."""
        return {"window": self.strategy, "max_length": int(self.max_length), "head_tokens": self.head_tokens}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], max_length: int) -> Window:
        """The window a model_config records; models logged without one read the head (what they were
        trained and logged to read)."""
        return cls(
            strategy=str(config.get("window") or "head"),
            max_length=int(config.get("max_length") or max_length),
            head_tokens=config.get("head_tokens"),
        )

    def override(
        self, strategy: Optional[str] = None, max_length: Optional[int] = None, head_tokens: Optional[int] = None
    ) -> Window:
        """This window with the given (non-None) parts replaced, e.g. a scoring job's ``score.truncation``."""
        changes = {"strategy": strategy, "max_length": max_length, "head_tokens": head_tokens}
        return replace(self, **{key: value for key, value in changes.items() if value is not None})

    def clamp(self, limit: int) -> Window:
        """No longer than the model's position embeddings."""
        return self if self.max_length <= limit else replace(self, max_length=int(limit))


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after one sequence (``[CLS]`` / ``[SEP]``, ``<s>`` / ``</s>``)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare) :])
    raise ValueError(f"cannot locate the text between {type(tokenizer).__name__}'s special tokens")


def encode(tokenizer, texts: Sequence[str], window: Window) -> list[list[int]]:
    """Token ids per text through ``window``, special tokens included, unpadded."""
    prefix, suffix = special_tokens(tokenizer)
    body = window.max_length - len(prefix) - len(suffix)
    if body < 1:
        specials = len(prefix) + len(suffix)
        raise ValueError(f"max_length {window.max_length} leaves no room beside {specials} special tokens")
    head, tail = window.split(body)
    cap = body * CHARS_PER_TOKEN

    def ids(pieces: list[str]) -> list[list[int]]:
        if not pieces:
            return []
        return tokenizer(pieces, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)[
            "input_ids"
        ]

    texts = list(texts)
    # Whole reviews are tokenized on purpose (the window is cut below): mark transformers' once-per-tokenizer
    # "longer than the specified maximum ... indexing errors" warning as given, since it does not apply here.
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):
        warned["sequence-length-is-longer-than-the-specified-maximum"] = True
    long = [i for i, text in enumerate(texts) if len(text) > 2 * cap]
    starts = ids([text[:cap] if len(text) > 2 * cap else text for text in texts])
    ends = dict(zip(long, ids([texts[i][-cap:] for i in long])))
    out = []
    for i, tokens in enumerate(starts):
        if i not in ends and len(tokens) <= body:
            kept = tokens
        else:
            end = ends.get(i, tokens)
            kept = tokens[:head] + (end[max(0, len(end) - tail) :] if tail else [])
        out.append(prefix + kept + suffix)
    return out


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` int64 arrays, right-padded to the longest row."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    width = int(lengths.max()) if len(rows) else 0
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    return ids, (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)


def _texts(data: Any) -> list[str]:
    if isinstance(data, pd.DataFrame):
        data = data.iloc[:, 0]
    if isinstance(data, str):
        data = [data]
    if isinstance(data, dict):
        data = next(iter(data.values()))
    return ["" if value is None else str(value) for value in list(data)]


class WindowedClassifier:
    """What ``mlflow.pyfunc.load_model`` returns for our logged models: the logged pipeline's model and
    tokenizer, reading each text through the recorded window. Output as the transformers flavor's
    text-classification pyfunc, a DataFrame with ``label`` and ``score``, plus ``probabilities``: a dict of
    every label's probability (calibrated by the temperature recorded with the model; they sum to 1)."""

    def __init__(self, pipeline, window: Window, batch_size: int = 8) -> None:
        self.pipeline = pipeline
        limit = getattr(pipeline.model.config, "max_position_embeddings", window.max_length)
        self.window = window.clamp(int(limit))
        self.batch_size = batch_size

    def get_raw_model(self):
        return self.pipeline

    def predict(self, data: Any, params: Optional[dict[str, Any]] = None) -> pd.DataFrame:
        import torch

        texts = _texts(data)
        tokenizer, model = self.pipeline.tokenizer, self.pipeline.model
        token_ids = encode(tokenizer, texts, self.window)
        order = np.argsort([len(t) for t in token_ids], kind="stable")
        temperature = Temperature.of_config(model.config)
        id2label = model.config.id2label
        every = np.zeros((len(texts), len(id2label)), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids, mask = pad([token_ids[i] for i in rows], tokenizer.pad_token_id or 0)
            with torch.inference_mode():
                logits = model(
                    input_ids=torch.from_numpy(ids).to(model.device),
                    attention_mask=torch.from_numpy(mask).to(model.device),
                ).logits
            lengths = mask.sum(axis=1)
            every[rows] = temperature.probabilities(logits.float().cpu().numpy(), lengths)
        best = every.argmax(axis=1)
        names = [id2label[i] for i in range(len(id2label))]
        return pd.DataFrame(
            {
                "label": [names[i] for i in best],
                "score": every[np.arange(len(texts)), best].astype(float),
                "probabilities": [dict(zip(names, row.astype(float).tolist())) for row in every],
            }
        )


def _load_pyfunc(path: str, model_config: Optional[dict[str, Any]] = None) -> WindowedClassifier:
    """The pyfunc loader named in a logged model's MLmodel (MLflow calls it with the model folder and the
    recorded model_config, merged with any ``model_config`` the caller passes to ``load_model``/``spark_udf``)."""
    from mlflow.transformers import _load_pyfunc as load_transformers_pyfunc  # the flavor's own pyfunc loader

    wrapper = load_transformers_pyfunc(path)
    # MLflow 2.13+ hands the pipeline out with get_raw_model(); older releases keep it as .pipeline
    pipeline = wrapper.get_raw_model() if hasattr(wrapper, "get_raw_model") else wrapper.pipeline
    config = dict(model_config or {})
    window = Window.from_config(config, int(pipeline.tokenizer.model_max_length))
    return WindowedClassifier(pipeline, window, int(getattr(pipeline, "_batch_size", None) or 8))
