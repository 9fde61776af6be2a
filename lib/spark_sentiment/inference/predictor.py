"""Executor side of the native engine: a predictor per Python worker (bounded LRU cache, any factory),
length-sorted dynamic-padding batches.

Nothing here touches Spark or MLflow, so the same code runs on an executor, on the driver, and in the
GPU benchmark that drives it without Spark.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np
import pandas as pd

from ..core.errors import ModelError
from ..model.compat import dtype_argument
from ..model.window import Window, encode, pad
from .precision import (
    AGREEMENT_KEY,
    Agreement,
    PrecisionChoice,
    cached_choice,
    choose,
    cpu_candidates,
    model_shape,
    rate,
)
from .text_policy import scorable_mask

Progress = Callable[[int], None]  # called with the number of texts just done
META_FILE = "sentiment_meta.json"
FAST_MAX_LENGTH = 256  # score.profile=fast: tokens read per review at most (head_tail)
CHUNK_ROWS = 1024  # rows tokenized and length-sorted together; batches never span two chunks
# oneDNN keeps a compiled primitive per (layer, batch shape); with dynamic padding nearly every batch has a
# new shape, and the default 1,024 entries held ~0.5 GB per worker. 64 bounds that at no measured speed cost.
# Read by oneDNN when it first builds a primitive; an executor env var (spark.executorEnv.*) overrides it.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")


@functools.cache
def _malloc_trim():
    libc_name = ctypes.util.find_library("c")  # runs ldconfig: once per process
    return getattr(ctypes.CDLL(libc_name), "malloc_trim", None) if libc_name else None


def _release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc's malloc_trim): activations of many sizes otherwise leave
    a worker's RSS at its high-water mark for good. A no-op where libc has no malloc_trim."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@dataclass(frozen=True)
class PredictorOptions:
    """How a worker runs the model; part of the cache key."""

    batch_size: int = 32
    max_tokens: int | None = None  # padded tokens per batch; None = rows only
    max_length: int | None = None  # None: as recorded with the model
    truncation: str | None = None  # head | tail | head_tail; None: as recorded
    head_tokens: int | None = None
    profile: str = "model"  # model | fast
    threads: int | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:<n>
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    bf16_min_agreement: float = 0.99  # auto on CPU: bf16 only for models whose recorded agreement reaches this
    allow_pickle_weights: bool = False  # pickle can run code: only for trusted models


def resolve_window(recorded: Window, options: PredictorOptions) -> Window:
    """The window a scoring run reads reviews through: the model's recorded one, the ``fast`` profile's
    cap, then explicit options (both engines use this, so they read the same tokens)."""
    window = recorded
    if options.profile == "fast":
        window = window.override(strategy="head_tail").clamp(FAST_MAX_LENGTH)
    try:
        return window.override(options.truncation, options.max_length, options.head_tokens)
    except ValueError as exc:
        raise ModelError(f"score window: {exc}") from None


def recorded_window(meta: dict) -> Window:
    """The window in a package's metadata (packages of models logged without one: the head)."""
    return Window.from_config(meta.get("window") or {}, int(meta["max_length"]))


def pick_device(requested: str, gpu_address: str | None) -> str:
    """``cuda:<address Spark assigned>`` when a GPU is there and wanted, else ``cpu``."""
    import torch

    if requested == "cpu" or not torch.cuda.is_available():
        if requested.startswith("cuda"):
            raise ModelError("score.device is cuda but this worker has no CUDA device")
        return "cpu"
    if requested.startswith("cuda:"):
        return requested
    return f"cuda:{gpu_address or 0}"


DTYPES = ("fp32", "bf16", "fp16")
PROBE_ROWS = 4  # rows per timed probe batch, at the window's full length (the widest batches cost the most)


def torch_dtype(name: str):  # -> torch.dtype
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def fixed_precision(precision: str, device: str) -> str | None:
    """The precision to use without measuring: an explicit one, or ``auto`` on a GPU (bf16 where the GPU
    has it, else fp16). None: ``auto`` on a CPU, decided by :mod:`.precision`'s probe."""
    import torch

    if precision != "auto":
        return precision
    if device == "cpu":
        return None
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class Predictor:
    """A loaded sequence classifier that labels a pandas Series of texts.

    Parameters
    ----------
    model_dir
        A model package folder (see :mod:`inference.package`): ``model/``, ``tokenizer/``, ``sentiment_meta.json``.
    options
        Batch size, token limit, threads, device and precision.
    gpu_address
        The GPU Spark assigned to the task (task resources), if any.
    """

    def __init__(self, model_dir: str | Path, options: PredictorOptions, gpu_address: str | None = None) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        root = Path(model_dir)
        meta = json.loads((root / META_FILE).read_text())
        if options.threads:
            torch.set_num_threads(options.threads)
        self.options = options
        self.device = pick_device(options.device, gpu_address)
        fixed = fixed_precision(options.precision, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", trust_remote_code=False)
        safetensors = any((root / "model").glob("*.safetensors"))
        if not safetensors and not options.allow_pickle_weights:
            raise ModelError(f"model package {root} has no safetensors weights (pickle weights are refused)")
        model = AutoModelForSequenceClassification.from_pretrained(
            root / "model",
            use_safetensors=safetensors,
            trust_remote_code=False,
            **dtype_argument(torch_dtype(fixed or "fp32")),
        )
        window = resolve_window(recorded_window(meta), options)
        self.window = window.clamp(int(meta.get("max_position_embeddings", window.max_length)))
        self.max_length = self.window.max_length
        self.pad_id = self.tokenizer.pad_token_id or 0
        # Weights are held in the compute dtype on CPU as on GPU: one code path, no per-call weight casts
        # (bf16 weights 33.5 rows/s vs 31.4 for fp32 weights under autocast in one run on Zen 4, equal in another).
        if fixed is not None:
            self.choice = PrecisionChoice(fixed, "configured" if options.precision != "auto" else "auto on a GPU")
            self.model = model.to(self.device, dtype=torch_dtype(fixed)).eval()
        else:
            self.choice, self.model = self._measured(model.eval(), meta)
        self.dtype = torch_dtype(self.choice.chosen)
        self.id2label = {int(k): v for k, v in meta["id2label"].items()}

    def _measured(self, model, meta: dict):
        """``auto`` on a CPU: the allowed precisions (:func:`.precision.cpu_candidates`), timed on the real
        model at this window's full length, once per CPU model and model shape in this process; returns the
        choice and the model in the chosen precision."""
        import copy

        import torch

        agreement = Agreement.from_dict(meta.get(AGREEMENT_KEY))
        candidates, allowed = cpu_candidates(agreement, self.options.bf16_min_agreement)
        models = {"fp32": model}
        if "bf16" in candidates:
            models["bf16"] = copy.deepcopy(model).to(dtype=torch.bfloat16)
        rows = min(self.options.batch_size, PROBE_ROWS)
        rng = np.random.default_rng(0)
        vocab = int(getattr(model.config, "vocab_size", 1000))
        probe = [rng.integers(min(1000, vocab - 1), vocab, self.max_length).tolist() for _ in range(rows)]

        def measure(name: str) -> float:
            return rate(lambda: self._run(models[name], probe).shape[0])

        key = (model_shape(model.config), self.max_length, rows, torch.get_num_threads(), tuple(candidates))
        choice = cached_choice(key, lambda: choose(candidates, measure, allowed))
        chosen = models[choice.chosen]
        models.clear()  # the other copy's memory goes now
        return choice, chosen

    def _run(self, model, token_ids: list[list[int]]):
        import torch

        ids, mask = pad(token_ids, self.pad_id)
        with torch.inference_mode():
            return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text through the window (as in training), unpadded (the fast tokenizer batches in Rust)."""
        return encode(self.tokenizer, texts, self.window)

    def batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Row indices in length order, cut into batches of at most ``batch_size`` rows and ``max_tokens``
        padded tokens (so long reviews get smaller batches and short ones larger)."""
        order = np.argsort(lengths, kind="stable")
        limit_rows, limit_tokens = self.options.batch_size, self.options.max_tokens
        out, start = [], 0
        while start < len(order):
            stop = min(start + limit_rows, len(order))
            if limit_tokens:
                # sorted ascending: the widest row of order[start:stop] is the last one
                while stop - start > 1 and (stop - start) * lengths[order[stop - 1]] > limit_tokens:
                    stop -= 1
            out.append(order[start:stop])
            start = stop
        return out

    def forward(self, token_ids: list[list[int]], progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and their probabilities, length-sorted into dynamically padded mini-batches;
        ``progress(rows)`` is called after each mini-batch."""
        import torch

        n = len(token_ids)
        best = np.zeros(n, dtype=np.int64)
        probability = np.zeros(n, dtype=np.float32)
        lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=n)
        on_gpu = self.device != "cpu"
        # Widest batch first: each later batch's activations fit in blocks the earlier ones freed. In ascending
        # order every batch needed bigger blocks than any freed before and glibc's heap grew with every
        # width (a worker's RSS went 1.1 -> 1.7 GB over 500 reviews at 512 tokens; 1.3 GB flat this way).
        for chunk in reversed(self.batches(lengths)):
            ids, mask = pad([token_ids[i] for i in chunk], self.pad_id)
            ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
            if on_gpu:  # pinned host memory lets the copy overlap with the previous batch's compute
                ids_t = ids_t.pin_memory().to(self.device, non_blocking=True)
                mask_t = mask_t.pin_memory().to(self.device, non_blocking=True)
            with torch.inference_mode():
                logits = self.model(input_ids=ids_t, attention_mask=mask_t).logits
            top = torch.softmax(logits.float(), dim=-1).max(dim=-1)
            best[chunk] = top.indices.cpu().numpy()
            probability[chunk] = top.values.cpu().numpy()
            if progress is not None:
                progress(len(chunk))
        return best, probability

    def predict(self, texts: pd.Series, progress: Progress | None = None) -> pd.DataFrame:
        """``label``/``score`` per text; null, empty and whitespace-only texts get nulls. ``progress(texts)``
        is called as texts are done (after each mini-batch), for a worker that reports while it runs."""
        valid = scorable_mask(texts).to_numpy()
        labels = pd.Series([None] * len(texts), dtype=object)
        scores = pd.Series(np.full(len(texts), np.nan, dtype=np.float32))
        rows = np.flatnonzero(valid)
        if progress is not None and len(rows) < len(texts):
            progress(len(texts) - len(rows))  # null and blank texts: done at once
        best = np.zeros(len(texts), dtype=np.int64)
        probability = np.zeros(len(texts), dtype=np.float32)
        # Token ids live as Python lists (~36 bytes per token): work through the Arrow batch in slices so a
        # worker's memory does not depend on spark.sql.execution.arrow.maxRecordsPerBatch.
        for start in range(0, len(rows), CHUNK_ROWS):
            part = rows[start : start + CHUNK_ROWS]
            best[part], probability[part] = self.forward(self.tokenize(texts.iloc[part].tolist()), progress)
        if len(rows):
            labels[valid] = [self.id2label[i] for i in best[rows]]
            scores[valid] = probability[rows]
        if self.device == "cpu":
            _release_free_heap()
        return pd.DataFrame({"label": labels, "score": scores})


class SupportsPredict(Protocol):
    """What the native UDF needs from a predictor: labels and scores for a Series of texts. A predictor
    whose ``predict`` also takes ``progress`` (as :class:`Predictor`'s does) reports rows while it works;
    the UDF counts the others' rows per call."""

    def predict(self, texts: pd.Series) -> pd.DataFrame: ...


# (model package folder, options, GPU address) -> a predictor; the native UDF takes any such factory.
PredictorFactory = Callable[[str, PredictorOptions, Optional[str]], SupportsPredict]

MAX_CACHED_MODELS = 3  # models kept per Python worker; Spark's model_cache keeps a few too
_CACHE: OrderedDict[tuple, SupportsPredict] = OrderedDict()
_LOCK = threading.Lock()


def _factory_key(factory: PredictorFactory) -> str:
    # By name, not identity: a factory unpickled for each task is a new object but the same factory.
    return f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', repr(factory))}"


def cached_predictor(
    model_dir: str,
    options: PredictorOptions,
    gpu_address: str | None = None,
    factory: PredictorFactory = Predictor,
    max_models: int = MAX_CACHED_MODELS,
) -> SupportsPredict:
    """The worker's predictor for this factory, model and options, built on first use (never per batch).

    A bounded LRU: a long-lived worker that scores with many model versions keeps the ``max_models`` it
    used last; the least recently used one is dropped (and its memory freed) when another is built.
    """
    key = (_factory_key(factory), model_dir, options, gpu_address)
    with _LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
        while len(_CACHE) >= max_models:
            _CACHE.popitem(last=False)
        if options.device != "cpu":
            _empty_cuda_cache()
        predictor = factory(model_dir, options, gpu_address)
        _CACHE[key] = predictor
        return predictor


def cached_models() -> list[tuple]:
    """Keys of the cached predictors, least recently used first (for tests and diagnostics)."""
    with _LOCK:
        return list(_CACHE)


def _empty_cuda_cache() -> None:
    """Return the evicted models' CUDA memory; a worker that never imported torch holds none (and a
    predictor that needs no torch, on an executor environment without it, must not import it here)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
