"""Executor side of the native engine: a predictor per Python worker (bounded LRU cache, any factory),
length-sorted dynamic-padding batches.

Nothing here touches Spark or MLflow, so the same code runs on an executor, on the driver, and in the
GPU benchmark that drives it without Spark.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import gc
import json
import logging
import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np
import pandas as pd

from ..config.sections import PredictorSection
from ..core.errors import ModelError
from ..model.compat import dtype_argument
from ..model.window import Temperature, Window, encode, pad, special_tokens
from .precision import (
    AGREEMENT_KEY,
    INT8_KEY,
    Agreement,
    PrecisionChoice,
    cached_choice,
    choose,
    cpu_candidates,
    int8_allowed,
    model_shape,
    rate,
)
from .runtimes import (
    MAX_PROBABILITY_GAP,
    OPENVINO,
    Candidate,
    Forward,
    Runtimes,
    openvino_problem,
    probability_gap,
    torch_dtype,
    torch_forward,
)
from .runtimes import candidates as runtime_candidates
from .sentences import Aggregation, aggregate, plan_sentences, polar_indices
from .text_policy import scorable_mask

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of texts just done
META_FILE = "sentiment_meta.json"
FAST_MAX_LENGTH = 256  # score.profile=fast: tokens read per review at most (head_tail)
CHUNK_ROWS = 1024  # rows tokenized and length-sorted together; batches never span two chunks
# oneDNN keeps a compiled primitive per (layer, batch shape); with dynamic padding nearly every batch has a
# new shape, and the default 1,024 entries grow a worker's memory by hundreds of MB. 64 bounds that without
# costing speed (docs/performance.md#library-settings).
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
class PredictorOptions(PredictorSection):
    """How a worker runs the model: the ``score`` section's worker options (one list of fields and defaults,
    :class:`~spark_sentiment.config.sections.PredictorSection`) and what the job decides beside them. Part of
    the predictor cache key. ``device`` may also name one GPU (``cuda:<n>``)."""

    allow_pickle_weights: bool = False  # pickle can run code: only for trusted models (model.allow_pickle_weights)

    @classmethod
    def of(cls, score: PredictorSection, allow_pickle_weights: bool = False) -> PredictorOptions:
        """The options of a config's ``score`` section (scoring and evaluation jobs)."""
        given = {field.name: getattr(score, field.name) for field in dataclasses.fields(PredictorSection)}
        return cls(**given, allow_pickle_weights=allow_pickle_weights)


SENTENCE_COLUMNS = (
    "label",
    "score",
    "probabilities",
    "sentence_start",
    "sentence_end",
    "sentence_label",
    "sentence_score",
    "evidence",
)


def sentence_rule(meta: dict, labels: list[str]) -> Aggregation:
    """The sentence aggregation recorded with a model package.

    Raises
    ------
    ModelError
        The model records none (trained before sentence granularity) or lacks POSITIVE/NEGATIVE labels.
    """
    try:
        polar_indices(labels)
    except ValueError as exc:
        raise ModelError(f"model {meta.get('model', '')}: {exc}") from None
    rule = Aggregation.from_dict(meta.get("aggregation"))
    if rule is None:
        raise ModelError(
            f"model {meta.get('model', '')} records no sentence aggregation thresholds (trained before "
            "score.granularity existed): retrain it, or score with score.granularity=review"
        )
    return rule


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


def fixed_precision(precision: str, device: str) -> str | None:
    """The precision to use without measuring: an explicit one, or ``auto`` on a GPU (bf16 where the GPU
    has it, else fp16). None: ``auto`` on a CPU, decided by :mod:`.precision`'s probe."""
    import torch

    if precision != "auto":
        return precision
    if device == "cpu":
        return None
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def length_batches(lengths: np.ndarray, rows: int, tokens: int | None = None) -> list[np.ndarray]:
    """Indices in length order, cut into batches of at most ``rows`` rows and ``tokens`` padded tokens."""
    order = np.argsort(lengths, kind="stable")
    out, start = [], 0
    while start < len(order):
        stop = min(start + rows, len(order))
        if tokens:
            # sorted ascending: the widest row of order[start:stop] is the last one
            while stop - start > 1 and (stop - start) * lengths[order[stop - 1]] > tokens:
                stop -= 1
        out.append(order[start:stop])
        start = stop
    return out


def run_logits(
    forward: Forward,
    token_ids: list[list[int]],
    batches: list[np.ndarray],
    pad_id: int,
    labels: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """The logits of every text (rows x labels, float32), one padded ``forward`` pass per batch of indices
    (:mod:`.runtimes`: a torch model's or OpenVINO's); ``progress(rows)`` after each."""
    logits = np.zeros((len(token_ids), labels), dtype=np.float32)
    # Widest batch first: each later batch's activations fit in blocks the earlier ones freed. In ascending
    # order every batch needs bigger blocks than any freed before, and glibc's heap grows with every width.
    for chunk in reversed(batches):
        ids, mask = pad([token_ids[i] for i in chunk], pad_id)
        logits[chunk] = forward(ids, mask)
        if progress is not None:
            progress(len(chunk))
    return logits


def run_batches(
    forward: Forward,
    token_ids: list[list[int]],
    batches: list[np.ndarray],
    pad_id: int,
    temperature: Temperature,
    labels: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """Every label's calibrated probability per text (rows x labels, float32): :func:`run_logits` divided by
    each text's temperature (by its token count) before the softmax."""
    logits = run_logits(forward, token_ids, batches, pad_id, labels, progress)
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
    return temperature.probabilities(logits, lengths)


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
        from transformers.utils import logging as hf_logging

        # Every Python worker of every executor loads the model: one "Loading weights" bar each would bury
        # the job's own lines in the driver's and executors' logs (the driver's setting does not reach here).
        hf_logging.disable_progress_bar()
        root = Path(model_dir)
        meta = json.loads((root / META_FILE).read_text())
        if options.threads:
            torch.set_num_threads(options.threads)
        self.options = options
        on_openvino = options.runtime == OPENVINO or options.precision == "int8"
        if on_openvino and (problem := openvino_problem()) is not None:
            setting = "precision is int8" if options.precision == "int8" else "runtime is openvino"
            raise ModelError(f"score.{setting} but {problem}")
        # OpenVINO's graph runs on the CPU, even on a worker that was given a GPU
        self.device = pick_device("cpu" if on_openvino else options.device, gpu_address)
        fixed = fixed_precision(options.precision, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", trust_remote_code=False)
        safetensors = any((root / "model").glob("*.safetensors"))
        if not safetensors and not options.allow_pickle_weights:
            raise ModelError(f"model package {root} has no safetensors weights (pickle weights are refused)")
        model = AutoModelForSequenceClassification.from_pretrained(
            root / "model",
            use_safetensors=safetensors,
            trust_remote_code=False,
            # OpenVINO converts from the fp32 weights; its precision is a compile-time hint
            **dtype_argument(torch_dtype("fp32" if on_openvino or fixed is None else fixed)),
        )
        window = resolve_window(recorded_window(meta), options)
        self.window = window.clamp(int(meta.get("max_position_embeddings", window.max_length)))
        self.max_length = self.window.max_length
        self.pad_id = self.tokenizer.pad_token_id or 0
        # The torch model while torch runs it (None once OpenVINO's graph has replaced it); ``infer`` runs a batch.
        # Weights are held in the compute dtype on CPU as on GPU: one code path, no per-call weight casts
        # (and no slower than fp32 weights under autocast: docs/performance.md#library-settings).
        self.model = None
        if fixed is not None and not on_openvino:
            self.choice = PrecisionChoice(fixed, "configured" if options.precision != "auto" else "auto on a GPU")
            self.model = model.to(self.device, dtype=torch_dtype(fixed)).eval()
            self.infer: Forward = torch_forward(self.model)
        else:
            self.choice, self.infer = self._measured(model.eval(), meta, fixed)
            del model
            # the probe's other candidates, the torch weights OpenVINO replaced and the tracing behind its
            # conversion are garbage now: collect it and hand the heap back, or the worker holds it for good
            gc.collect()
            _release_free_heap()
        self.dtype = torch_dtype(Candidate.parse(self.choice.chosen).precision)
        self.id2label = {int(k): v for k, v in meta["id2label"].items()}
        self.labels = [self.id2label[i] for i in range(len(self.id2label))]
        self.temperature = Temperature.from_dict(meta.get("temperature"))  # fitted at training (1: not calibrated)
        self.aggregation = None
        if options.granularity == "sentence":
            self.aggregation = sentence_rule(meta, self.labels)

    def _measured(self, model, meta: dict, fixed: str | None) -> tuple[PrecisionChoice, Forward]:
        """A CPU's runtime and precision: the allowed candidates (:func:`.precision.cpu_candidates`, and
        OpenVINO's graph as ``score.runtime`` says, :func:`.runtimes.candidates`) timed on the real model at
        this window's full length, once per CPU model and model shape in this process. ``fixed``: OpenVINO in a
        configured precision, not measured. Returns the choice, with each candidate's one-off seconds, and its
        forward pass; the other candidates' copies are freed."""
        import torch

        threads = self.options.threads or torch.get_num_threads()
        if fixed is not None:
            names, allowed = [Candidate(OPENVINO, fixed).name], "configured"
        else:
            agreement = Agreement.from_dict(meta.get(AGREEMENT_KEY))
            precisions, allowed = cpu_candidates(agreement, self.options.bf16_min_agreement)
            problem = openvino_problem() if self.options.runtime == "auto" else None
            int8, int8_why = int8_allowed(
                Agreement.from_dict(meta.get(INT8_KEY)),
                self.options.int8_min_agreement,
                self.options.int8_max_accuracy_drop,
            )
            names, note = runtime_candidates(precisions, self.options.runtime, problem, int8)
            if self.options.runtime == "torch" or problem is not None:
                int8_why = ""  # no OpenVINO candidate at all: the note says why
            allowed = "; ".join(filter(None, [allowed, int8_why, note]))
        rows = min(self.options.batch_size, PROBE_ROWS)
        rng = np.random.default_rng(0)
        vocab = int(getattr(model.config, "vocab_size", 1000))
        probe = [rng.integers(min(1000, vocab - 1), vocab, self.max_length).tolist() for _ in range(rows)]
        ids, mask = pad(probe, self.pad_id)
        runtimes = Runtimes(model, threads, (ids[:2], mask[:2]))
        strict = fixed is not None or self.options.runtime == OPENVINO  # no torch to fall back on
        names, allowed = self._checked_openvino(runtimes, names, allowed, ids, mask, strict)

        def measure(name: str) -> float:
            forward = runtimes.forward(name)
            return rate(lambda: forward(ids, mask).shape[0])

        key = (model_shape(model.config), self.max_length, rows, threads, tuple(names))
        choice = cached_choice(key, lambda: choose(names, measure, allowed))
        forward = runtimes.keep(choice.chosen)  # the other copies' memory goes now
        self.model = runtimes.torch_models.get(choice.chosen)
        return dataclasses.replace(choice, prepare_seconds=dict(runtimes.seconds)), forward

    def _checked_openvino(
        self, runtimes: Runtimes, names: list[str], allowed: str, ids: np.ndarray, mask: np.ndarray, strict: bool
    ) -> tuple[list[str], str]:
        """OpenVINO's candidates converted and compared with the torch model on the probe rows: a conversion
        that fails or whose probabilities stray (:data:`.runtimes.MAX_PROBABILITY_GAP`) is an error where
        OpenVINO was asked for (``strict``: ``score.runtime`` openvino, or precision int8), and under ``auto``
        leaves the other candidates, with the reason logged and reported in the choice."""
        ours = [name for name in names if Candidate.parse(name).runtime == OPENVINO]
        if not ours:
            return names, allowed
        reference = torch_forward(runtimes.model)(ids, mask)
        for name in ours:
            try:
                gap = probability_gap(reference, runtimes.forward(name)(ids, mask))
                problem = (
                    None
                    if gap <= MAX_PROBABILITY_GAP
                    else (f"its probabilities differ from torch fp32's by up to {gap:.3f} on the probe rows")
                )
            except Exception as exc:  # noqa: BLE001 -- any conversion failure: reported, torch stays
                problem = f"converting the model failed ({type(exc).__name__}: {exc})"
            if problem is None:
                continue
            if strict:
                raise ModelError(f"OpenVINO {name}: {problem}")
            log.warning("OpenVINO not used for this model: %s %s", name, problem)
            names = [n for n in names if n != name]
            allowed = "; ".join(filter(None, [allowed, f"OpenVINO not a candidate: {name} {problem}"]))
        return names, allowed

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text through the window (as in training), unpadded (the fast tokenizer batches in Rust)."""
        return encode(self.tokenizer, texts, self.window)

    def batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Row indices in length order, cut into batches of at most ``batch_size`` rows and ``max_tokens``
        padded tokens (so long reviews get smaller batches and short ones larger)."""
        return length_batches(lengths, self.options.batch_size, self.options.max_tokens)

    def forward(self, token_ids: list[list[int]], progress: Progress | None = None) -> np.ndarray:
        """Every label's calibrated probability per text (rows x labels, float32), length-sorted into
        dynamically padded mini-batches; ``progress(rows)`` is called after each mini-batch."""
        lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
        return run_batches(
            self.infer, token_ids, self.batches(lengths), self.pad_id, self.temperature, len(self.labels), progress
        )

    def predict(self, texts: pd.Series, progress: Progress | None = None) -> pd.DataFrame:
        """Review granularity: :meth:`predict_reviews`; sentence granularity: :meth:`predict_sentences`."""
        if self.aggregation is not None:
            return self.predict_sentences(texts, progress)
        return self.predict_reviews(texts, progress)

    def predict_sentences(self, texts: pd.Series, progress: Progress | None = None) -> pd.DataFrame:
        """Every sentence of each whole review scored (sentences of many reviews batched together by length; a
        sentence longer than the window cut into pieces read whole), and the review's label by the recorded
        :class:`.sentences.Aggregation`. Columns: ``label``, ``score``, ``probabilities`` (the review's: its
        sentences' token-weighted mean), ``sentence_start``/``_end``/``_label``/``_score`` (lists, one entry
        per sentence) and ``evidence`` (the index of the sentence that most supports the label). Null,
        empty and whitespace-only texts (and texts without a sentence) get nulls."""
        valid = scorable_mask(texts).to_numpy()
        n = len(texts)
        columns: dict[str, list] = {name: [None] * n for name in SENTENCE_COLUMNS}
        if progress is not None and valid.sum() < n:
            progress(int(n - valid.sum()))
        prefix, suffix = special_tokens(self.tokenizer)
        body = self.window.max_length - len(prefix) - len(suffix)
        rows = np.flatnonzero(valid)
        for start in range(0, len(rows), CHUNK_ROWS):
            part = rows[start : start + CHUNK_ROWS]
            plan = plan_sentences(self.tokenizer, texts.iloc[part].tolist(), body, prefix, suffix)
            lengths = np.fromiter((len(p) for p in plan.pieces), dtype=np.int64, count=len(plan.pieces))
            batches = length_batches(lengths, len(lengths), self.sentence_tokens())
            pieces = run_batches(self.infer, plan.pieces, batches, self.pad_id, self.temperature, len(self.labels))
            sentence_p = plan.sentence_probabilities(pieces)
            bounds = np.searchsorted(plan.sentence_review, np.arange(len(part) + 1))
            for k, row in enumerate(part):
                first, last = bounds[k], bounds[k + 1]
                if first == last:
                    continue
                probabilities, weights = sentence_p[first:last], plan.weights[first:last]
                review = aggregate(probabilities, weights, self.labels, self.aggregation)  # type: ignore[arg-type]
                best = probabilities.argmax(axis=1)
                columns["label"][row] = review.label
                columns["score"][row] = review.score
                columns["probabilities"][row] = dict(zip(self.labels, review.probabilities.tolist()))
                columns["sentence_start"][row] = [a for a, _ in plan.spans[first:last]]
                columns["sentence_end"][row] = [b for _, b in plan.spans[first:last]]
                columns["sentence_label"][row] = [self.labels[i] for i in best]
                columns["sentence_score"][row] = probabilities[np.arange(len(best)), best].tolist()
                columns["evidence"][row] = review.evidence
            if progress is not None:
                progress(len(part))
        if self.device == "cpu":
            _release_free_heap()
        frame = pd.DataFrame(columns)
        frame["score"] = frame["score"].astype("float32")
        return frame

    def sentence_tokens(self) -> int:
        """Padded tokens per forward pass at sentence granularity: as many as a full batch of reviews holds
        (``batch_size`` x the window), or ``max_tokens``. Sentences are short: batched by rows, their matrix
        products were too small to keep the cores busy (half the tokens/s of review batches)."""
        return self.options.max_tokens or self.options.batch_size * self.window.max_length

    def predict_reviews(self, texts: pd.Series, progress: Progress | None = None) -> pd.DataFrame:
        """``label``, ``score`` (its probability) and ``probabilities`` (a dict of every label's) per text;
        null, empty and whitespace-only texts get nulls. ``progress(texts)`` is called as texts are done
        (after each mini-batch), for a worker that reports while it runs."""
        valid = scorable_mask(texts).to_numpy()
        labels = pd.Series([None] * len(texts), dtype=object)
        scores = pd.Series(np.full(len(texts), np.nan, dtype=np.float32))
        every = pd.Series([None] * len(texts), dtype=object)
        rows = np.flatnonzero(valid)
        if progress is not None and len(rows) < len(texts):
            progress(len(texts) - len(rows))  # null and blank texts: done at once
        probabilities = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        # Token ids live as Python lists (~36 bytes per token): work through the Arrow batch in slices so a
        # worker's memory does not depend on spark.sql.execution.arrow.maxRecordsPerBatch.
        for start in range(0, len(rows), CHUNK_ROWS):
            part = rows[start : start + CHUNK_ROWS]
            probabilities[part] = self.forward(self.tokenize(texts.iloc[part].tolist()), progress)
        if len(rows):
            best = probabilities[rows].argmax(axis=1)
            labels[valid] = [self.labels[i] for i in best]
            scores[valid] = probabilities[rows, best]
            every[valid] = [dict(zip(self.labels, row)) for row in probabilities[rows].tolist()]
        if self.device == "cpu":
            _release_free_heap()
        return pd.DataFrame({"label": labels, "score": scores, "probabilities": every})


class SupportsPredict(Protocol):
    """What the native UDF needs from a predictor: ``label`` and ``score`` for a Series of texts, and
    ``probabilities`` (a dict of every label's; a predictor without the column leaves it null). A predictor
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


def _empty_cuda_cache() -> None:
    """Return the evicted models' CUDA memory; a worker that never imported torch holds none (and a
    predictor that needs no torch, on an executor environment without it, must not import it here)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
