"""Driver side of the native engine: turn a resolved MLflow model into a package that Spark ships.

The package is a zip (``model/``, ``tokenizer/``, ``sentiment_meta.json``) added with
``SparkContext.addArchive``; executors find it unpacked under ``SparkFiles``, so they need neither the
driver's filesystem nor access to the registry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import yaml
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import MODEL_CONFIG
from pyspark.sql import SparkSession

from ..core.errors import ModelError
from ..core.paths import data_dir
from ..model.flavor import AGREEMENT_METADATA_KEY, INT8_METADATA_KEY
from ..model.registry import ResolvedModel
from ..model.window import CODE_MODULE, Temperature, Window
from .precision import AGREEMENT_KEY, INT8_KEY
from .predictor import META_FILE, recorded_window
from .sentences import AGGREGATION_ATTRIBUTE


@dataclass(frozen=True)
class ModelPackage:
    archive_name: str  # the zip's file name: unpacked under SparkFiles.get(archive_name) on executors
    local_dir: Path  # unpacked copy on the driver
    archive: Path  # the zip on the driver
    id2label: dict[int, str]
    window: Window  # how the model reads a review, as recorded when it was logged
    window_recorded: bool  # False: a model logged without one (its pyfunc reads the head, MLflow's own loader)


# Part of the cache key, raised whenever sentiment_meta.json changes what it holds (a package built by an earlier
# format lacks what this code reads): 2 the recorded window, 3 the bf16 agreement, 4 the temperature, 5 its
# dependence on length, 6 the int8 agreement.
PACKAGE_FORMAT = 6


def _mlmodel(root: Path, uri: str) -> dict:
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        raise ModelError(f"model URI {uri}: no MLmodel file in its artifacts")
    return yaml.safe_load(mlmodel.read_text()) or {}


def _recorded_window(flavors: dict) -> dict | None:
    """The window our logged models record as their pyfunc model_config (None for other models)."""
    pyfunc = flavors.get("python_function") or {}
    if pyfunc.get("loader_module") != CODE_MODULE:
        return None
    return pyfunc.get(MODEL_CONFIG) or None  # the flavor's "config": what MLflow hands the loader


def _transformers_layout(root: Path, flavors: dict, uri: str) -> tuple[Path, Path]:
    flavor = flavors.get("transformers")
    if flavor is None:
        raise ModelError(f"model URI {uri}: not a transformers model (flavors: {', '.join(flavors) or 'none'})")
    model_dir = root / flavor.get("model_binary", "model")
    tokenizer_dir = root / "components" / "tokenizer"
    if not tokenizer_dir.is_dir():
        tokenizer_dir = model_dir
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"model URI {uri}: weights folder {model_dir.name}/ missing or incomplete")
    return model_dir, tokenizer_dir


def _check_weights(model_dir: Path, uri: str, allow_pickle: bool) -> None:
    """Safetensors weights whose header reads back, or (only when allowed) pickle weights."""
    from safetensors import SafetensorError, safe_open

    tensors = sorted(model_dir.glob("*.safetensors"))
    if not tensors:
        if allow_pickle and any(model_dir.glob("*.bin")):
            return
        raise ModelError(
            f"model URI {uri}: no safetensors weights in {model_dir.name}/ (pickle weights are refused; "
            "set model.allow_pickle_weights=true only for a model you trust)"
        )
    for file in tensors:
        try:
            with safe_open(str(file), framework="pt") as weights:
                weights.keys()
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"model URI {uri}: weights file {file.name} is unreadable or corrupted: {exc}") from None


def build_package(
    resolved: ResolvedModel, cache_root: Path | None = None, allow_pickle_weights: bool = False
) -> ModelPackage:
    """Download the model once and lay out (and zip) the package; cached by the concrete URI and the
    version's artifact source (two registries' ``Name/1`` are different models).

    Raises
    ------
    ModelError
        Artifacts missing, not a transformers model, unreadable, or weights not in safetensors (unless
        ``allow_pickle_weights``).
    """
    cache_root = cache_root or data_dir() / "model_cache"
    key = f"{resolved.uri} source={resolved.source} format={PACKAGE_FORMAT}"  # source: one registry's, not another's
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    safe = "".join(ch if ch.isalnum() else "_" for ch in resolved.label)[:60]
    name = f"{safe}-{digest}"
    target = cache_root / name
    archive = cache_root / f"{name}.zip"
    if not (target / META_FILE).is_file() or not archive.is_file():
        cache_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_root) as tmp:
            try:
                root = Path(mlflow.artifacts.download_artifacts(artifact_uri=resolved.uri, dst_path=tmp))
            except (MlflowException, OSError) as exc:
                raise ModelError(f"model URI {resolved.requested}: artifacts cannot be downloaded: {exc}") from exc
            mlmodel = _mlmodel(root, resolved.requested)
            flavors = mlmodel.get("flavors", {})
            model_dir, tokenizer_dir = _transformers_layout(root, flavors, resolved.requested)
            _check_weights(model_dir, resolved.requested, allow_pickle_weights)
            staging = Path(tmp) / "package"
            shutil.copytree(model_dir, staging / "model")
            shutil.copytree(tokenizer_dir, staging / "tokenizer")
            try:
                config = json.loads((model_dir / "config.json").read_text())
                tokenizer_config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
            except (OSError, ValueError) as exc:
                raise ModelError(f"model URI {resolved.requested}: unreadable model config: {exc}") from None
            positions = int(config.get("max_position_embeddings", 512))
            meta = {
                "model": resolved.label,
                "id2label": config["id2label"],
                "max_length": int(min(tokenizer_config.get("model_max_length", positions), positions)),
                "max_position_embeddings": positions,
                "window": _recorded_window(flavors),
                "temperature": Temperature.of_config(config).to_dict(),  # calibration fitted at training
                "aggregation": config.get(AGGREGATION_ATTRIBUTE),  # sentence granularity's rule (None: not fitted)
                # bf16/fp32 label agreement measured at training: lets precision auto consider bf16 on CPUs
                AGREEMENT_KEY: (mlmodel.get("metadata") or {}).get(AGREEMENT_METADATA_KEY),
                # the same for OpenVINO int8 (with its accuracy change): lets precision auto consider int8
                INT8_KEY: (mlmodel.get("metadata") or {}).get(INT8_METADATA_KEY),
            }
            (staging / META_FILE).write_text(json.dumps(meta))
            zipped = _zip_stored(staging, Path(tmp) / f"{name}.zip")
            shutil.rmtree(target, ignore_errors=True)
            staging.replace(target)
            zipped.replace(archive)
    _check_weights(target / "model", resolved.requested, allow_pickle_weights)
    meta = json.loads((target / META_FILE).read_text())
    id2label = {int(k): v for k, v in meta["id2label"].items()}
    try:
        window = recorded_window(meta)
    except ValueError as exc:
        raise ModelError(f"model URI {resolved.requested}: recorded truncation window is invalid: {exc}") from None
    return ModelPackage(archive.name, target, archive, id2label, window, meta.get("window") is not None)


def _zip_stored(folder: Path, archive: Path) -> Path:
    """``folder`` as a zip whose entries are stored, not deflated: model weights hardly compress and
    deflating them is the slow part of packaging (docs/performance.md#library-settings); executors unpack a
    stored zip faster too."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zipped:
        for path in sorted(folder.rglob("*")):
            zipped.write(path, path.relative_to(folder).as_posix())
    return archive


SHIPPED_CONF = "spark.sentiment.shippedArchives"  # session conf: archives this session already added


def ship(spark: SparkSession, package: ModelPackage) -> None:
    """Make the package available to every executor (unpacked as ``SparkFiles.get(archive_name)``):
    ``SparkContext.addArchive`` on a classic session, ``addArtifacts(archive=True)`` over Spark Connect
    (the session's own artifact folder, which its Python workers see as SparkFiles)."""
    try:
        context = spark.sparkContext
    except AttributeError:  # Spark Connect
        context = None
    if context is not None:
        if package.archive_name not in {Path(p).name for p in context.listArchives}:
            context.addArchive(str(package.archive))
        return
    shipped = set(filter(None, (spark.conf.get(SHIPPED_CONF, "") or "").split(",")))
    if package.archive_name not in shipped:
        spark.addArtifacts(str(package.archive), archive=True)
        spark.conf.set(SHIPPED_CONF, ",".join(sorted(shipped | {package.archive_name})))


_VERIFIED: set[tuple[str, bool]] = set()


def verify(package: ModelPackage, allow_pickle_weights: bool = False) -> None:
    """Load the package on the driver and label one text, once per process: a model that cannot load
    fails here with the model named, before any data is read, not as a task failure on every executor."""
    key = (str(package.local_dir), allow_pickle_weights)
    if key in _VERIFIED:
        return
    import pandas as pd

    from .predictor import Predictor, PredictorOptions

    try:
        # loading is what is checked: torch in fp32, no precision probe or OpenVINO conversion on the driver
        options = PredictorOptions(
            device="cpu", precision="fp32", runtime="torch", allow_pickle_weights=allow_pickle_weights
        )
        Predictor(package.local_dir, options).predict(pd.Series(["a check that the model loads"]))
    except ModelError:
        raise
    except Exception as exc:  # tokenizer/model files that transformers cannot parse
        raise ModelError(f"model {package.archive_name}: cannot be loaded: {exc.__class__.__name__}: {exc}") from None
    _VERIFIED.add(key)
