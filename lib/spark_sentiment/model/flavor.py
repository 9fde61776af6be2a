"""Log a fine-tuned classifier with MLflow's transformers flavor (pipeline + signature + input example)."""

from __future__ import annotations

import importlib.metadata

import mlflow
from mlflow.models.model import ModelInfo
from transformers import Pipeline, PreTrainedModel, PreTrainedTokenizerBase, pipeline

INPUT_EXAMPLE = ["I love this movie", "this movie was the worst, boring!"]
# Exactly what a scoring environment needs. Passing these also keeps MLflow from importing torchvision
# to infer pins, which fails where torchvision is absent.
_RUNTIME_PACKAGES = ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "accelerate", "pandas", "numpy")


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model, read from the running environment."""
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in _RUNTIME_PACKAGES]


def build_pipeline(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 8) -> Pipeline:
    """The text-classification pipeline that gets logged (on CPU: the logged copy must load anywhere)."""
    return pipeline("text-classification", model=model.to("cpu"), tokenizer=tokenizer, batch_size=batch_size)


def log_pipeline(pipe: Pipeline, registered_name: str | None, name: str = "model") -> ModelInfo:
    """Log ``pipe`` with the transformers flavor in the active run and register it under ``registered_name``.

    ``model_config`` turns truncation on at load time (``spark_udf``/``pyfunc.load_model`` ignore a config that
    was not set when logging), so a review longer than the model's limit is cut, never a crash.
    ``mlflow.transformers.load_model`` returns the bare pipeline: pass ``truncation=True`` to it.
    """
    return mlflow.transformers.log_model(
        transformers_model=pipe,
        name=name,
        task="text-classification",
        input_example=INPUT_EXAMPLE,
        model_config={"truncation": True, "max_length": int(pipe.tokenizer.model_max_length)},
        pip_requirements=pip_requirements(),
        registered_model_name=registered_name,
    )
