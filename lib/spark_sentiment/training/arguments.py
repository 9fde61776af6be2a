"""TrainingArguments and the Trainer from the typed config (kept free of MLflow/Spark so a bare GPU box can use it)."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import torch
from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from .compat import schedule_arguments, tokenizer_argument
from .config import TrainSection
from .metrics import classification_metrics

log = logging.getLogger(__name__)


def precision_flags(train: TrainSection) -> dict[str, bool]:
    """``bf16``/``fp16`` TrainingArguments for the configured precision and the hardware present."""
    wanted = train.precision
    if wanted == "auto":
        if not torch.cuda.is_available():
            return {"bf16": False, "fp16": False}
        wanted = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": wanted == "bf16", "fp16": wanted == "fp16"}


def training_arguments(train: TrainSection, output_dir: str, report_to: list[str] | None = None) -> TrainingArguments:
    """The seed recipe's TrainingArguments, filled from the config (names as the installed transformers has
    them: :mod:`.compat`)."""
    report_to = ["mlflow"] if report_to is None else report_to
    on_cpu = not torch.cuda.is_available()
    # Under torchrun on CPU (TorchDistributor without GPUs), accelerate only sets up DDP with use_cpu and
    # gloo; without them every process trained alone on all rows ("parallel_mode != DISTRIBUTED").
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        use_cpu=on_cpu,
        ddp_backend="gloo" if on_cpu and several else None,
        output_dir=output_dir,
        learning_rate=train.learning_rate,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.eval_batch_size,
        weight_decay=train.weight_decay,
        optim=train.optim,
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=train.logging_steps,
        report_to=report_to,
        seed=train.seed,
        disable_tqdm=True,
        dataloader_num_workers=train.dataloader_workers,
        dataloader_persistent_workers=train.dataloader_workers > 0,
        **precision_flags(train),
        **schedule_arguments(train.warmup_ratio, "epoch", train.group_by_length),
    )


def build_trainer(
    train: TrainSection,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any,
    output_dir: str,
    report_to: list[str] | None = None,
) -> Trainer:
    """The HF Trainer every training path uses (the job, TorchDistributor processes, the GPU benchmark).

    Datasets hold token ids (``input_ids``, ``attention_mask``, ``labels``); batches are padded per batch
    to the longest review, rounded up to ``train.pad_to_multiple_of``.
    """
    trainer = Trainer(
        model=model,
        args=training_arguments(train, output_dir, report_to),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        **tokenizer_argument(tokenizer),
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=train.pad_to_multiple_of),
        compute_metrics=classification_metrics,
    )
    # With tqdm off, the Trainer prints each log dict to stdout, where the job's JSON summary must be the
    # last line; the same numbers go to the job's log (stderr) as lines instead.
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(LogLinesCallback())
    trainer.add_callback(FinalEvaluationByPredictCallback())
    return trainer


class FinalEvaluationByPredictCallback(TrainerCallback):
    """Skips the evaluation after the last epoch: ``fit`` predicts the eval set right after training and logs
    those metrics as the final evaluation point, so the eval set is not run through the model twice in a row."""

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_evaluate = False
        return control


class LogLinesCallback(TrainerCallback):
    """Trainer logs (loss, learning rate, eval metrics, progress in steps) as ``key=value`` lines: every
    evaluation and the last step, and training losses at about ``lines`` evenly spaced steps (MLflow gets
    every log as a curve point; a person reading the job's log wants the trend, not 70 lines of it)."""

    def __init__(self, lines: int = 20) -> None:
        self.lines = lines

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (state.is_local_process_zero and logs):
            return
        every = max(1, math.ceil(state.max_steps / self.lines))
        evaluation = any(k.startswith("eval_") for k in logs) or "train_runtime" in logs
        crossed = state.global_step // every != (state.global_step - args.logging_steps) // every
        if evaluation or crossed or state.global_step >= state.max_steps:
            values = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items())
            log.info("step %d/%d: %s", state.global_step, state.max_steps, values)
