"""What differs between the MLflow (2.12 to 3.x) and transformers (4.37 to 5.x) releases we support when a
model is logged, registered and found again, in one place. Detected from the installed APIs, not from
version numbers.

| concern | MLflow 2.x | MLflow 3.x |
|---|---|---|
| where ``Model.log`` puts a model | ``artifact_path=`` in the run | ``name=``: a logged model, ``models:/m-<id>`` |
| ``models:/m-<id>`` URIs | do not exist: refused with the MLflow release named | ``mlflow.get_logged_model`` |

transformers takes a model's dtype in ``from_pretrained`` as ``torch_dtype=`` before 4.56, ``dtype=`` from 4.56.
MLflow is imported inside the functions that need it: executors import this module without it.

Models are saved so that the oldest supported releases read them: transformers 5 has one tokenizer class
per model (``BertTokenizer``, backed by the ``tokenizers`` library) where transformers 4 had a slow
``BertTokenizer`` (which needs ``vocab.txt``) and a fast ``BertTokenizerFast`` (``tokenizer.json``).
MLflow's transformers flavor records the class name and older MLflow loads exactly that class, so a model
logged under transformers 5 records the ``...Fast`` name (an alias of the same class there) for a
tokenizer it saved as ``tokenizer.json``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from typing import Any

from ..core.errors import ModelError


def mlflow_distribution() -> str:
    """``mlflow`` where the full package is installed, else ``mlflow-skinny`` (what managed runtimes ship)."""
    for distribution in ("mlflow", "mlflow-skinny"):
        try:
            importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        return distribution
    raise ModelError("neither mlflow nor mlflow-skinny is installed")


def mlflow_version() -> str:
    return importlib.metadata.version(mlflow_distribution())


def has_logged_models() -> bool:
    """Whether this MLflow has logged models (``models:/m-<id>``, MLflow 3)."""
    import mlflow

    return hasattr(mlflow, "get_logged_model")


def model_location(name: str) -> dict[str, Any]:
    """``Model.log`` keywords that place the model under ``name``: a logged model named ``name`` (MLflow 3),
    or the run's artifact folder ``name`` (MLflow 2)."""
    from mlflow.models import Model

    if "name" in inspect.signature(Model.log).parameters:
        return {"artifact_path": None, "name": name}
    return {"artifact_path": name}


def get_logged_model(model_id: str, uri: str) -> Any:
    """The logged model ``model_id`` (MLflow 3); a :class:`ModelError` naming ``uri`` under MLflow 2."""
    if not has_logged_models():
        raise ModelError(
            f"model URI {uri}: logged models (models:/m-<id>) need MLflow 3; this runtime has MLflow "
            f"{mlflow_version()} (use models:/Name/<version>, models:/Name@alias or runs:/<run_id>/model)"
        )
    import mlflow

    return mlflow.get_logged_model(model_id)


def portable_tokenizer_type(tokenizer: Any) -> str | None:
    """The tokenizer class name that every supported transformers release loads this tokenizer with, where
    it differs from ``type(tokenizer).__name__`` (see the module docstring); None where it does not."""
    import transformers

    name = type(tokenizer).__name__
    if name.endswith("Fast") or not getattr(tokenizer, "is_fast", False):
        return None
    fast = getattr(transformers, f"{name}Fast", None)
    return f"{name}Fast" if fast is type(tokenizer) else None


def transformers_version() -> str:
    return importlib.metadata.version("transformers")


def dtype_argument(dtype: Any) -> dict[str, Any]:
    """The ``from_pretrained`` keyword that loads weights in ``dtype`` (see the module docstring)."""
    release = tuple(int(part) for part in transformers_version().split(".")[:2])
    return {"dtype": dtype} if release >= (4, 56) else {"torch_dtype": dtype}


def spark_udf_takes_model_config() -> bool:
    """Whether ``mlflow.pyfunc.spark_udf`` takes ``model_config`` (MLflow 2.13 and later)."""
    import mlflow.pyfunc

    return "model_config" in inspect.signature(mlflow.pyfunc.spark_udf).parameters


def spark_udf_returns_maps() -> bool:
    """Whether ``mlflow.pyfunc.spark_udf`` takes a ``map<string, ...>`` field in its result type (MLflow 2.12
    takes primitives, arrays and structs only). Read from the check spark_udf itself applies."""
    import mlflow.pyfunc
    from pyspark.sql.types import DoubleType, MapType, StringType

    check = getattr(mlflow.pyfunc, "_check_udf_return_type", None)
    return bool(check is not None and check(MapType(StringType(), DoubleType())))
