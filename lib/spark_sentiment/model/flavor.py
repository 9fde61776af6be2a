"""Log a fine-tuned classifier with MLflow's transformers flavor (pipeline + signature + input example),
reading reviews through its truncation window under ``mlflow.pyfunc`` too."""

from __future__ import annotations

import functools
import importlib.metadata
import tempfile
import types
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import Model, infer_signature
from mlflow.models.model import ModelInfo
from transformers import Pipeline, PreTrainedModel, PreTrainedTokenizerBase, pipeline

from . import compat
from . import window as window_module
from .window import Window

INPUT_EXAMPLE = ["I love this movie", "this movie was the worst, boring!"]
# Exactly what a scoring environment needs. Passing these also keeps MLflow from importing torchvision
# to infer pins, which fails where torchvision is absent.
_RUNTIME_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "accelerate", "pandas", "numpy")
AGREEMENT_METADATA_KEY = "spark_sentiment_cpu_bf16"  # MLmodel metadata: bf16/fp32 label agreement on CPU
INT8_METADATA_KEY = "spark_sentiment_cpu_int8"  # MLmodel metadata: OpenVINO int8/fp32 agreement, accuracy change
METADATA_KEY = "spark_sentiment_window"  # MLmodel metadata: the recorded window, for people and tools
CALIBRATION_METADATA_KEY = "spark_sentiment_calibration"  # MLmodel metadata: temperature and ECE, for people


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model, read from the running environment."""
    mlflow_pin = f"{compat.mlflow_distribution()}=={compat.mlflow_version()}"
    return [mlflow_pin] + [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in _RUNTIME_PACKAGES]


def build_pipeline(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 8) -> Pipeline:
    """The text-classification pipeline that gets logged (on CPU: the logged copy must load anywhere)."""
    return pipeline("text-classification", model=model.to("cpu"), tokenizer=tokenizer, batch_size=batch_size)


def _save_windowed(path: str, mlflow_model: Model, *, window: Window, **kwargs) -> None:
    """``mlflow.transformers.save_model``, then the pyfunc flavor's loader becomes :mod:`.window`, shipped
    in the model's ``code/`` folder, with the window as its model_config."""
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / f"{window_module.CODE_MODULE}.py"
        code.write_text(window_module.source())  # not a file copy: the package may be imported from a zip
        mlflow.transformers.save_model(
            path=path, mlflow_model=mlflow_model, code_paths=[str(code)], model_config=window.to_config(), **kwargs
        )
    pyfunc = mlflow_model.flavors["python_function"]
    pyfunc["loader_module"] = window_module.CODE_MODULE
    tokenizer_type = compat.portable_tokenizer_type(kwargs["transformers_model"].tokenizer)
    if tokenizer_type and "tokenizer_type" in mlflow_model.flavors.get("transformers", {}):
        mlflow_model.flavors["transformers"]["tokenizer_type"] = tokenizer_type  # older releases load it
    mlflow_model.save(str(Path(path) / "MLmodel"))


def log_pipeline(
    pipe: Pipeline,
    registered_name: str | None,
    window: Window,
    name: str = "model",
    cpu_bf16: dict | None = None,
    cpu_int8: dict | None = None,
    calibration: dict | None = None,
) -> tuple[ModelInfo, str | None]:
    """Log ``pipe`` with the transformers flavor in the active run and register it under ``registered_name``.

    ``window`` (strategy and max length) is recorded with the model: ``mlflow.pyfunc.load_model`` and
    ``spark_udf`` read each review through it (a ``model_config`` given to them overrides it), and the native
    engine reads it from the MLmodel. ``mlflow.transformers.load_model`` returns the bare pipeline, which
    reads the head: call it with ``truncation=True``, or tokenize with :func:`.window.encode`.

    ``cpu_bf16`` (``{"agreement", "rows"}``: how often bf16 labels equal fp32 labels on the eval sample, on
    a CPU) is recorded too: scoring's ``precision: auto`` considers bf16 on CPUs only with it; ``cpu_int8``
    (the same for OpenVINO int8, with ``accuracy_change``) likewise for int8.
    ``calibration`` (temperature by length, ECE before and after, rows) goes into the MLmodel metadata for
    people and tools; the temperature itself travels in the model's ``config.json``
    (:meth:`.window.Temperature.config_attributes`), where the engines and the pyfunc read it.

    Returns
    -------
    tuple
        The ``ModelInfo`` and the registered version (None when ``registered_name`` is None).
    """
    config = pipe.model.config
    labels = [config.id2label[i] for i in range(len(config.id2label))]
    example_output = {"label": [labels[-1]], "score": [0.5], "probabilities": [{name: 0.5 for name in labels}]}
    signature = infer_signature(INPUT_EXAMPLE, pd.DataFrame(example_output))
    metadata = {METADATA_KEY: window.to_config()}
    if cpu_bf16:
        metadata[AGREEMENT_METADATA_KEY] = cpu_bf16
    if cpu_int8:
        metadata[INT8_METADATA_KEY] = cpu_int8
    if calibration:
        metadata[CALIBRATION_METADATA_KEY] = calibration
    flavor = types.SimpleNamespace(save_model=functools.partial(_save_windowed, window=window))
    info = Model.log(
        flavor=flavor,
        flavor_name="transformers",
        metadata=metadata,
        transformers_model=pipe,
        task="text-classification",
        input_example=INPUT_EXAMPLE,
        signature=signature,
        pip_requirements=pip_requirements(),
        **compat.model_location(name),
    )
    if registered_name is None:
        return info, None
    # registered here, not by Model.log: MLflow 2's ModelInfo does not say which version it registered
    return info, str(mlflow.register_model(info.model_uri, registered_name).version)
