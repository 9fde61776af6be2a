"""What differs between the transformers releases we support (4.37 to 5.x) for training, in one place.

Detected from ``TrainingArguments``' fields and ``Trainer``'s signature, not from version numbers, so a
backport or a release between the ones we test takes the path its API has.

| concern | transformers 4.37-4.45 | 4.46-4.57 | 5.x |
|---|---|---|---|
| evaluation schedule | ``evaluation_strategy`` | ``eval_strategy`` | ``eval_strategy`` |
| warm-up as a ratio | ``warmup_ratio`` | ``warmup_ratio`` | ``warmup_steps=<float < 1>`` |
| length-grouped batches | ``group_by_length=True`` | ``group_by_length=True`` | ``train_sampling_strategy`` |
| the tokenizer handed to the Trainer | ``tokenizer=`` | ``processing_class=`` | ``processing_class=`` |
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

from transformers import Trainer, TrainingArguments

_FIELDS = {field.name: field for field in dataclasses.fields(TrainingArguments)}


def _takes_float(name: str) -> bool:
    kind = _FIELDS[name].type
    text = kind if isinstance(kind, str) else repr(kind)
    return kind is float or "float" in text or float in typing.get_args(kind)


def schedule_arguments(warmup_ratio: float, eval_strategy: str, group_by_length: bool) -> dict[str, Any]:
    """``TrainingArguments`` keywords for the warm-up ratio, the evaluation schedule and length grouping,
    spelled as the installed transformers spells them."""
    arguments: dict[str, Any] = {}
    arguments["eval_strategy" if "eval_strategy" in _FIELDS else "evaluation_strategy"] = eval_strategy
    if _takes_float("warmup_steps"):  # transformers 5: a float < 1 is a ratio of the total steps
        arguments["warmup_steps"] = warmup_ratio
    else:
        arguments["warmup_ratio"] = warmup_ratio
    if group_by_length:
        if "train_sampling_strategy" in _FIELDS:
            arguments["train_sampling_strategy"] = "group_by_length"
        else:
            arguments["group_by_length"] = True
    return arguments


def tokenizer_argument(tokenizer: Any) -> dict[str, Any]:
    """The ``Trainer`` keyword that hands it the tokenizer (saved with checkpoints, pads in predict)."""
    if "processing_class" in inspect.signature(Trainer.__init__).parameters:
        return {"processing_class": tokenizer}
    return {"tokenizer": tokenizer}
