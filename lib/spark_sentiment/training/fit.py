"""One fine-tuning pass with the HF Trainer: tokenize, train, predict the eval set. Used by the training
job in one process and by every TorchDistributor process alike (no MLflow, no Spark here)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any, Optional

from datasets import Dataset

from ..inference.precision import PrecisionChoice
from ..model.base import load_base
from ..model.window import encode
from .arguments import build_trainer
from .config import TrainJobConfig
from .precision import resolve_precision


@dataclass
class Fitted:
    """What training hands to logging and registration (from this process or from rank 0 of several)."""

    model: Any
    tokenizer: Any
    log_history: list[dict]
    metrics: dict[str, float]
    precision: Optional[PrecisionChoice] = None  # how train.precision was chosen (None: not known here)


def fit(cfg: TrainJobConfig, train_ds: Dataset, eval_ds: Dataset, report_to: list[str]) -> Fitted:
    """Tokenize, train with the HF Trainer and predict the eval set. Under torchrun (TorchDistributor) the
    Trainer runs data-parallel across the processes by itself."""
    model, tokenizer = load_base(cfg.model.base, cfg.model.labels, cfg.train.max_length, cfg.train.seed)

    window = cfg.training_window().clamp(tokenizer.model_max_length)

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        # the same window the scoring engines and the logged model read through (model.window)
        ids = encode(tokenizer, batch["text"], window)
        return {"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]}

    train_tok = train_ds.map(tokenize, batched=True, remove_columns=["text"])
    eval_tok = eval_ds.map(tokenize, batched=True, remove_columns=["text"])
    from transformers import DataCollatorWithPadding

    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=cfg.train.pad_to_multiple_of)
    train_section, precision = resolve_precision(cfg.train, model, collator, train_tok)
    with tempfile.TemporaryDirectory(prefix="spark-sentiment-train-") as output_dir:
        trainer = build_trainer(train_section, model, tokenizer, train_tok, eval_tok, output_dir, report_to)
        trainer.train()
        # the last epoch's evaluation (skipped in training, see FinalEvaluationByPredictCallback): the same
        # eval_* metrics at the last step, in log_history and for every report_to integration
        final = trainer.predict(eval_tok, metric_key_prefix="eval")
        trainer.log(dict(final.metrics))
    return Fitted(trainer.model, tokenizer, trainer.state.log_history, final.metrics, precision)
