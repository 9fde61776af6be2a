"""``train.precision: auto`` on a CPU by measurement, and the bf16 label check recorded with the model.

On a CPU, ``auto`` times a few training steps (forward and backward, no optimizer step) of the real
model on real batches in fp32 and under bf16 autocast (what the Trainer's ``bf16=True`` runs) and trains in
the faster: bf16 autocast was 1.26x slower than fp32 on a 2-core Intel Xeon with AVX512-BF16 (no AMX) and
faster on an AMD Zen 4. On a GPU ``auto`` is bf16 where the GPU has it, else fp16.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from typing import Any

from ..inference.precision import Agreement, PrecisionChoice, choose, rate
from ..inference.runtimes import label_agreement
from ..model.window import Window, encode
from .config import TrainSection

log = logging.getLogger(__name__)

PROBE_ROWS = 8  # rows per timed training step (the longest reviews of the first batches)


def resolve_precision(
    train: TrainSection, model: Any, collator: Any, train_tok: Any
) -> tuple[TrainSection, PrecisionChoice]:
    """``train`` with ``precision`` made concrete, and how it was chosen."""
    import torch

    if train.precision != "auto":
        return train, PrecisionChoice(train.precision, "configured")
    if torch.cuda.is_available():
        chosen = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return replace(train, precision=chosen), PrecisionChoice(chosen, "auto on a CUDA GPU")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every rank must train alike: no per-rank timing
        return replace(train, precision="fp32"), PrecisionChoice(
            "fp32", "auto with several CPU processes: not measured"
        )
    choice = measured_cpu_precision(model, collator, train_tok, min(train.batch_size, PROBE_ROWS))
    log.info("train.precision auto: %s (%s)", choice.chosen, choice.reason)
    return replace(train, precision=choice.chosen), choice


def measured_cpu_precision(model: Any, collator: Any, train_tok: Any, rows: int) -> PrecisionChoice:
    """fp32 or bf16 autocast, whichever runs training steps faster here (the model's weights, gradients and
    the torch RNG are left as they were, so training is the same as without the probe)."""
    import torch

    longest = sorted(range(min(len(train_tok), 64)), key=lambda i: -len(train_tok[i]["input_ids"]))[:rows]
    batch = collator([train_tok[i] for i in longest])
    rng = torch.random.get_rng_state()
    was_training = model.training
    model.train()

    def step(name: str) -> int:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
            loss = model(**batch).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        return len(longest)

    def measure(name: str) -> float:
        return rate(lambda: step(name))

    try:
        return choose(["fp32", "bf16"], measure, "training steps on this CPU")
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        torch.random.set_rng_state(rng)


def int8_agreement(
    model: Any, tokenizer: Any, texts: list[str], labels: list[int], window: Window, rows: int
) -> Agreement | None:
    """OpenVINO int8 vs torch fp32 labels of the trained model on the CPU over the first ``rows`` labeled eval
    texts read through the scoring window, and int8's accuracy change: recorded with the model for scoring's
    ``precision: auto``. None when ``rows`` is 0 or this machine has no openvino package (the model then never
    runs int8 under ``auto``; the log says so)."""
    import torch

    from ..inference import runtimes

    if rows <= 0 or not texts:
        return None
    problem = runtimes.openvino_problem()
    if problem is not None:
        log.info("int8 agreement not measured (scoring's precision auto will not consider int8): %s", problem)
        return None
    started = time.perf_counter()
    token_ids = encode(tokenizer, texts[:rows], window)
    try:
        agreement = runtimes.int8_agreement(
            model, token_ids, labels[:rows], tokenizer.pad_token_id or 0, torch.get_num_threads()
        )
    except Exception as exc:  # noqa: BLE001 -- a model OpenVINO cannot convert still trains and registers
        log.warning(
            "int8 agreement not measured (scoring's precision auto will not consider int8): %s: %s",
            type(exc).__name__,
            exc,
        )
        return None
    log.info(
        "OpenVINO int8 labels agree with fp32 on %.2f%% of %d eval rows, accuracy %+.2f points (%.1f s)",
        100 * agreement.agreement,
        agreement.rows,
        100 * (agreement.accuracy_change or 0.0),
        time.perf_counter() - started,
    )
    return agreement


def bf16_agreement(model: Any, tokenizer: Any, texts: list[str], window: Window, rows: int) -> Agreement | None:
    """bf16 vs fp32 labels of the trained model on the CPU over the first ``rows`` eval texts read through
    the scoring window (None when ``rows`` is 0): recorded with the model for scoring's ``precision: auto``."""
    if rows <= 0 or not texts:
        return None
    started = time.perf_counter()
    token_ids = encode(tokenizer, texts[:rows], window)
    agreement = label_agreement(model, token_ids, tokenizer.pad_token_id or 0)
    log.info(
        "bf16 labels agree with fp32 on %.2f%% of %d eval rows on the CPU (%.1f s)",
        100 * agreement.agreement,
        agreement.rows,
        time.perf_counter() - started,
    )
    return agreement
