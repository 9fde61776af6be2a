"""How a predictor runs its model's forward pass: torch (eager), or OpenVINO's compiled graph of the same model
(the optional ``openvino`` extra; CPU only), in fp32, bf16 or int8.

A runtime is reduced to a :data:`Forward`: padded token ids and attention mask in, float32 logits out. The
predictor's batching, temperature and sentence logic sit above it, so every runtime reads the same tokens and
calibrates the same way. Nothing here imports Spark or MLflow.

OpenVINO is converted from the loaded torch model on the worker that uses it (its PyTorch frontend, a
few seconds for a MiniLM; the predictor cache keeps the result for the worker's life), and compiled with
the precision as an inference hint: bf16 matrix products with fp32 accumulation where the CPU has
AVX512-BF16 or AMX, as torch's bf16 weights give (docs/performance.md measures both).

``int8`` is OpenVINO only: every encoder Linear's weights rounded to int8 per output channel (symmetric, the
scale from the row's largest weight) before conversion, and OpenVINO's dynamic quantization of their inputs
to 8 bits per group of :data:`INT8_GROUP` channels at run time (VNNI or AMX int8 dot products); no
calibration set, so nothing to go stale. The classifier and pooler keep their weights, the rest (attention
scores, softmax, LayerNorm) runs under the bf16 hint. Whether a model may use it is measured at training
(:func:`int8_agreement`, recorded with the model) and gated at scoring.
"""

from __future__ import annotations

import functools
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..model.window import pad
from .precision import Agreement, classify

# (padded token ids, attention mask), both int64 rows x tokens -> logits, float32 rows x labels
Forward = Callable[[np.ndarray, np.ndarray], np.ndarray]

OPENVINO = "openvino"
OPENVINO_INSTALL = "pip install 'spark-sentiment[openvino]'"
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "bf16"}  # INFERENCE_PRECISION_HINT
# Channels per dynamic quantization scale of an int8 Linear's input: 128 measured fastest of 32/128/384 on a
# Zen 4 with labels as close to fp32 as the others (docs/performance.md)
INT8_GROUP = 128
KEEP_WEIGHTS = ("classifier", "pooler")  # Linear layers int8 leaves as they are (few weights, the output)
# A converted graph whose probabilities differ from torch fp32's by more than this on the probe rows is not
# used: bf16 moves them by a few hundredths at most, a wrong conversion by much more.
MAX_PROBABILITY_GAP = 0.1


@dataclass(frozen=True)
class Candidate:
    """One way to run the model: a runtime and a precision. Its :attr:`name` is what choices and summaries
    show: ``fp32``/``bf16``/``fp16`` for torch, ``openvino-bf16``, ``openvino-int8`` etc."""

    runtime: str  # torch | openvino
    precision: str  # fp32 | bf16 | fp16 | int8 (openvino)

    @property
    def name(self) -> str:
        return self.precision if self.runtime == "torch" else f"{self.runtime}-{self.precision}"

    @classmethod
    def parse(cls, name: str) -> Candidate:
        runtime, _, precision = name.rpartition("-")
        return cls(runtime or "torch", precision)


def openvino_problem() -> str | None:
    """Why OpenVINO cannot run on this worker (its package missing or broken), or None."""
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        return f"the openvino package is not installed on this worker ({exc}; {OPENVINO_INSTALL})"
    return None


def candidates(precisions: list[str], runtime: str, problem: str | None, int8: bool = False) -> tuple[list[str], str]:
    """The candidates a CPU probe times, from the precisions the model allows, whether it may use int8, and
    ``score.runtime``; and what the choice's reason should add. ``auto`` adds one OpenVINO candidate where it
    is installed: int8 where the model allows it, else the best allowed float precision (each candidate is
    one more conversion and copy of the model alive during the probe; where int8 has VNNI or AMX dot products
    it is the faster, and where it has not, torch's own candidates still compete), and says why not where it
    is not installed; ``openvino`` without the package is an error the caller raises."""
    torch_names = [Candidate("torch", p).name for p in precisions]
    openvino_names = [Candidate(OPENVINO, p).name for p in precisions]
    int8_names = [Candidate(OPENVINO, "int8").name] if int8 else []
    if runtime == "torch":
        return torch_names, ""
    if runtime == OPENVINO:
        return openvino_names + int8_names, ""
    if problem is not None:
        return torch_names, f"OpenVINO not a candidate: {problem}"
    return torch_names + (int8_names or openvino_names[-1:]), ""


def torch_dtype(name: str):  # -> torch.dtype
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.int8}[name]


def torch_forward(model) -> Forward:
    """The torch model's forward pass; on a GPU, inputs go through pinned memory so the copy overlaps with the
    previous batch's compute."""
    import torch

    device = next(model.parameters()).device
    on_gpu = device.type != "cpu"

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        if on_gpu:
            ids_t = ids_t.pin_memory().to(device, non_blocking=True)
            mask_t = mask_t.pin_memory().to(device, non_blocking=True)
        with torch.inference_mode():
            return model(input_ids=ids_t, attention_mask=mask_t).logits.float().cpu().numpy()

    return forward


@functools.cache
def _core():
    import openvino as ov

    return ov.Core()


def convert(model, example: tuple[np.ndarray, np.ndarray]):
    """OpenVINO's graph of a torch sequence classifier (fp32 weights), dynamic in rows and tokens. The graph
    owns a copy of the weights, so the torch model can be freed once it is compiled.

    Through OpenVINO's PyTorch frontend directly, not ``openvino.convert_model``: that tool sends usage
    telemetry unless the user opted out, from a forked child process, and a child forked from a Spark driver or
    Python worker shares its socket to the JVM (the driver's py4j connection was reset each time). The frontend
    is what the tool runs; the graphs are the same."""
    import torch
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder
    from transformers.utils import logging as hf_logging

    inputs = {"input_ids": torch.from_numpy(example[0]), "attention_mask": torch.from_numpy(example[1])}
    level = hf_logging.get_verbosity()
    try:
        # Tracing prints torch's TracerWarnings about Python control flow on shapes (the branches taken hold for
        # every input: attention masks, no cache) and transformers' notes on config attributes it reads; every
        # worker would print them into its log.
        hf_logging.set_verbosity_error()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decoder = TorchScriptPythonDecoder(model.float().eval(), example_input=inputs, shared_memory=False)
            frontend = FrontEndManager().load_by_framework("pytorch")
            return frontend.convert(frontend.load(decoder))
    finally:
        hf_logging.set_verbosity(level)


def int8_weights(model):
    """A copy of ``model`` whose encoder Linear layers hold int8 weights and one float scale per output channel
    (symmetric, the row's largest weight at 127) and compute with the weights those give back: OpenVINO reads
    the int8 constant, its conversion and scale as compressed weights and runs the layer in int8."""
    import copy

    import torch
    import torch.nn.functional as F

    class Int8Linear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear) -> None:
            super().__init__()
            weight = linear.weight.detach().float()
            scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            self.register_buffer("qweight", torch.round(weight / scale).clamp(-127, 127).to(torch.int8))
            self.register_buffer("scale", scale)
            self.bias = linear.bias

        def forward(self, x):
            return F.linear(x, self.qweight.to(x.dtype) * self.scale, self.bias)

    quantized = copy.deepcopy(model).float().eval()
    for parent_name, parent in list(quantized.named_modules()):
        for name, child in list(parent.named_children()):
            path = f"{parent_name}.{name}" if parent_name else name
            if isinstance(child, torch.nn.Linear) and not any(part in path for part in KEEP_WEIGHTS):
                setattr(parent, name, Int8Linear(child))
    return quantized


def compile_graph(graph, precision: str, threads: int) -> Forward:
    """The converted graph compiled for this CPU with ``precision`` as the inference hint, ``threads``
    threads and one stream (a worker runs one batch at a time); int8 (a graph of :func:`int8_weights`) with
    its inputs quantized dynamically."""
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
        "PERFORMANCE_HINT": "LATENCY",
        # OpenVINO pins its threads to cores counted from the first: two Python workers of one executor would
        # share one core (each ran at half speed) while the next stood idle. The OS spreads unpinned threads.
        "ENABLE_CPU_PINNING": False,
    }
    if precision == "int8":
        config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = INT8_GROUP
    compiled = _core().compile_model(graph, "CPU", config)
    request, output = compiled.create_infer_request(), compiled.output(0)
    lock = threading.Lock()  # one infer request: calls from two threads of a worker take turns

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with lock:
            # the result is a view of the request's output tensor, which the next call overwrites
            return np.array(request.infer({"input_ids": ids, "attention_mask": mask})[output], dtype=np.float32)

    return forward


class Runtimes:
    """Builds each candidate's :data:`Forward` for one loaded torch model on first use and remembers it,
    with the one-off seconds it took (OpenVINO: conversion, shared by its precisions, plus compiling)."""

    def __init__(self, model, threads: int, example: tuple[np.ndarray, np.ndarray]) -> None:
        self.model, self.threads, self.example = model, threads, example
        self.built: dict[str, Forward] = {}
        self.torch_models: dict[str, object] = {}  # torch candidates' models, by name
        self.seconds: dict[str, float] = {}
        self._graphs: dict[str, object] = {}  # converted graphs: "float" (every float precision) and "int8"

    def forward(self, name: str) -> Forward:
        if name not in self.built:
            started = time.perf_counter()
            self.built[name] = self._build(Candidate.parse(name))
            self.seconds[name] = round(time.perf_counter() - started, 3)
        return self.built[name]

    def _build(self, candidate: Candidate) -> Forward:
        import copy

        if candidate.runtime == "torch":
            model = self.model if candidate.precision == "fp32" else copy.deepcopy(self.model)
            model = self.torch_models[candidate.name] = model.to(dtype=torch_dtype(candidate.precision))
            return torch_forward(model)
        kind = "int8" if candidate.precision == "int8" else "float"
        if kind not in self._graphs:
            source = int8_weights(self.model) if kind == "int8" else self.model
            self._graphs[kind] = convert(source, self.example)
        return compile_graph(self._graphs[kind], candidate.precision, self.threads)

    def keep(self, name: str) -> Forward:
        """The chosen candidate's forward; every other one (and the converted graph) is dropped now."""
        chosen = self.forward(name)
        self.built = {name: chosen}
        self.torch_models = {n: m for n, m in self.torch_models.items() if n == name}
        self._graphs.clear()
        return chosen


def probability_gap(reference: np.ndarray, other: np.ndarray) -> float:
    """The largest difference between two sets of logits' softmax probabilities."""

    def softmax(logits: np.ndarray) -> np.ndarray:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    return float(np.abs(softmax(reference.astype(np.float64)) - softmax(other.astype(np.float64))).max())


def label_agreement(model, token_ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 16) -> Agreement:
    """Labels of ``model`` (any device, left as it was) on the CPU in fp32 and in bf16 weights, compared:
    what lets ``precision: auto`` consider bf16 on CPUs for this model."""
    import copy

    import torch

    cpu32 = copy.deepcopy(model).to("cpu", dtype=torch.float32).eval()
    fp32 = classify(torch_forward(cpu32), token_ids, pad_id, batch_size)
    bf16 = classify(torch_forward(cpu32.to(dtype=torch.bfloat16)), token_ids, pad_id, batch_size)
    del cpu32
    return Agreement(float((fp32 == bf16).mean()) if len(fp32) else 0.0, len(fp32))


def int8_agreement(model, token_ids: list[list[int]], labels: list[int], pad_id: int, threads: int) -> Agreement:
    """OpenVINO int8 against torch fp32 on labeled rows (``model`` left as it was): how often their labels
    agree, and the accuracy change as a fraction (int8 minus fp32). What lets ``precision: auto`` consider
    int8 for this model (:func:`.precision.int8_allowed`)."""
    import copy

    cpu32 = copy.deepcopy(model).to("cpu").float().eval()  # the trained model may sit on a GPU, or in bf16
    example = pad(sorted(token_ids, key=len)[:2], pad_id)
    int8 = compile_graph(convert(int8_weights(cpu32), example), "int8", threads)
    ours = classify(torch_forward(cpu32), token_ids, pad_id, 16)
    theirs = classify(int8, token_ids, pad_id, 16)
    truth = np.asarray(labels)
    change = float((theirs == truth).mean() - (ours == truth).mean()) if len(truth) else 0.0
    return Agreement(float((ours == theirs).mean()) if len(ours) else 0.0, len(ours), round(change, 6))
