"""``precision: auto`` by measurement: which precisions a CPU may use, and the faster of them on this CPU.

A CPU flag does not say whether bf16 is faster: on a 2-core Intel Xeon with AVX512-BF16 (no AMX) the
demo model ran 31.5 rows/s in fp32 and 19.9 in bf16 at 256 tokens; on a 2-core AMD Zen 4 bf16 was 2.8x
fp32 (docs/performance.md). So ``auto`` times the real model in each allowed precision for a moment on the
machine it runs on and keeps the faster, once per CPU model and model shape in a process.

*Allowed*: fp32 always; bf16 on a CPU only where the model's labels under bf16 agree with fp32 on its own
eval sample (:func:`.runtimes.label_agreement`, recorded with the model when it is trained) at least
``min_agreement``. Nothing here imports Spark or MLflow: the scoring workers, the training job and the
benchmarks share it.
"""

from __future__ import annotations

import functools
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

# A candidate other than fp32 must beat fp32 by this factor to be chosen: fp32 is exact, and a tie within a
# probe's noise is not worth the label changes a lower precision brings.
MIN_GAIN = 1.05
PROBE_ROUNDS = 2  # timed rounds per candidate, alternating, after one untimed warm-up each
# A timed round repeats its call until this much time has passed: one forward pass of a small model takes a
# few milliseconds, where a scheduler tick or the other worker on the core decides the "faster" precision.
PROBE_MIN_SECONDS = 0.1
AGREEMENT_KEY = "cpu_bf16"  # where the recorded agreement lives in a model's metadata
INT8_KEY = "cpu_int8"  # where the recorded OpenVINO int8 agreement lives


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else what :mod:`platform` says)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@functools.cache
def cpu_features() -> dict[str, bool]:
    """The features that decide reduced-precision speed: AVX512-BF16, AMX (bf16 tiles), AVX512-VNNI."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
    }


def describe_cpu() -> str:
    """``<model> (avx512_bf16, no amx_bf16, avx512_vnni)``: what every benchmark table names."""
    features = ", ".join(name if present else f"no {name}" for name, present in cpu_features().items())
    return f"{cpu_model()} ({features})"


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``auto`` chose on one CPU and why, with the probe's measured rows/s per candidate."""

    chosen: str  # fp32 | bf16 | fp16 (torch), openvino-fp32 | -bf16 | -int8 (.runtimes.Candidate)
    reason: str
    cpu: str = field(default_factory=cpu_model)
    rows_per_s: dict[str, float] = field(default_factory=dict)  # empty when nothing was measured
    probe_seconds: float = 0.0
    # one-off seconds per candidate built on this worker: a torch copy in bf16, OpenVINO's conversion + compile
    prepare_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Agreement:
    """How often a lower precision's labels (bf16, int8) equal fp32 labels on a model's eval sample, and (where
    the rows are labeled) how much it moved accuracy; recorded with the model."""

    agreement: float
    rows: int
    accuracy_change: float | None = None  # fraction, lower precision minus fp32

    def as_dict(self) -> dict:
        record = {"agreement": round(self.agreement, 6), "rows": self.rows}
        if self.accuracy_change is not None:
            record["accuracy_change"] = round(self.accuracy_change, 6)
        return record

    @classmethod
    def from_dict(cls, record: dict | None) -> "Agreement | None":
        if not record:
            return None
        change = record.get("accuracy_change")
        return cls(float(record["agreement"]), int(record["rows"]), None if change is None else float(change))


def cpu_candidates(agreement: Agreement | None, min_agreement: float) -> tuple[list[str], str]:
    """The precisions ``auto`` may use on a CPU, and why bf16 is or is not among them."""
    if agreement is None:
        return ["fp32"], "bf16 not allowed: no bf16/fp32 label agreement recorded with the model"
    if agreement.agreement < min_agreement:
        return ["fp32"], (
            f"bf16 not allowed: its labels agreed with fp32 on {agreement.agreement:.2%} of {agreement.rows} "
            f"eval rows, under the {min_agreement:.2%} required"
        )
    return ["fp32", "bf16"], f"bf16 allowed: {agreement.agreement:.2%} label agreement on {agreement.rows} eval rows"


def int8_allowed(record: Agreement | None, min_agreement: float, max_drop: float) -> tuple[bool, str]:
    """Whether ``precision: auto`` may consider OpenVINO int8 for a model, and why: its recorded int8 labels
    agreed with fp32 on at least ``min_agreement`` of the eval rows and cost at most ``max_drop`` accuracy."""
    if record is None:
        return False, "int8 not allowed: no int8/fp32 label agreement recorded with the model"
    drop = -(record.accuracy_change or 0.0)
    if record.agreement < min_agreement or drop > max_drop:
        return False, (
            f"int8 not allowed: its labels agreed with fp32 on {record.agreement:.2%} of {record.rows} eval rows "
            f"(at least {min_agreement:.2%} required) and moved accuracy by {-drop:+.2%} (at most -{max_drop:.2%})"
        )
    return True, f"int8 allowed: {record.agreement:.2%} label agreement, accuracy {-drop:+.2%} on {record.rows} rows"


def rate(call: Callable[[], int], min_seconds: float = PROBE_MIN_SECONDS) -> float:
    """Rows per second of ``call() -> rows``, repeated until ``min_seconds`` have passed (at least once)."""
    rows = 0
    started = time.perf_counter()
    while True:
        rows += call()
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return rows / elapsed


def choose(candidates: Sequence[str], measure: Callable[[str], float], allowed_reason: str = "") -> PrecisionChoice:
    """The faster of ``candidates`` by ``measure(precision) -> rows/s`` (one untimed warm-up call, then
    :data:`PROBE_ROUNDS` alternating timed calls each, best kept). A single candidate is not measured. A
    candidate other than fp32 wins only when at least :data:`MIN_GAIN` times fp32's rows/s."""
    if len(candidates) == 1:
        return PrecisionChoice(candidates[0], allowed_reason or "the only allowed precision")
    started = time.perf_counter()
    for name in candidates:
        measure(name)  # warm-up: first-call kernel selection and allocation are not the steady state
    rates = {name: 0.0 for name in candidates}
    for _ in range(PROBE_ROUNDS):
        for name in candidates:
            rates[name] = max(rates[name], measure(name))
    best = max(rates, key=rates.__getitem__)
    if "fp32" in rates and rates[best] < rates["fp32"] * MIN_GAIN:
        best = "fp32"
    summary = ", ".join(f"{name} {rate:.1f} rows/s" for name, rate in rates.items())
    reason = f"measured {summary}" + (f"; {allowed_reason}" if allowed_reason else "")
    return PrecisionChoice(
        best, reason, rows_per_s={k: round(v, 2) for k, v in rates.items()}, probe_seconds=time.perf_counter() - started
    )


_CHOICES: dict[tuple, PrecisionChoice] = {}
_CHOICES_LOCK = threading.Lock()


def cached_choice(key: tuple, decide: Callable[[], PrecisionChoice]) -> PrecisionChoice:
    """``decide()`` once per ``key`` (CPU model, model shape, window, batch, threads) in this process."""
    with _CHOICES_LOCK:
        found = _CHOICES.get((cpu_model(), *key))
        if found is None:
            found = _CHOICES[(cpu_model(), *key)] = decide()
        return found


def model_shape(config) -> tuple:
    """The parts of a transformers config that decide its speed (so a new version of the same model
    reuses the measurement)."""
    names = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
    return tuple(getattr(config, name, None) for name in names)


def classify(forward, token_ids: Sequence[Sequence[int]], pad_id: int, batch_size: int) -> np.ndarray:
    """Class ids for ``token_ids`` through ``forward`` (padded ids and mask -> logits, as
    :data:`.runtimes.Forward`), in length-sorted, dynamically padded batches."""
    from ..model.window import pad

    order = np.argsort([len(row) for row in token_ids], kind="stable")
    best = np.zeros(len(token_ids), dtype=np.int64)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = pad([token_ids[i] for i in chunk], pad_id)
        best[chunk] = np.asarray(forward(ids, mask)).argmax(axis=-1)
    return best
