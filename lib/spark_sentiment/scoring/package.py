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
from dataclasses import dataclass
from pathlib import Path

import mlflow
import yaml
from mlflow.exceptions import MlflowException
from pyspark.sql import SparkSession

from ..errors import ModelError
from ..model.registry import ResolvedModel
from ..paths import data_dir
from .predictor import META_FILE


@dataclass(frozen=True)
class ModelPackage:
    archive_name: str  # the zip's file name: unpacked under SparkFiles.get(archive_name) on executors
    local_dir: Path  # unpacked copy on the driver
    archive: Path  # the zip on the driver
    id2label: dict[int, str]
    max_length: int


def _transformers_layout(root: Path, uri: str) -> tuple[Path, Path]:
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        raise ModelError(f"model URI {uri}: no MLmodel file in its artifacts")
    flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
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


def build_package(resolved: ResolvedModel, cache_root: Path | None = None) -> ModelPackage:
    """Download the model once and lay out (and zip) the package; cached by the concrete URI."""
    cache_root = cache_root or data_dir() / "model_cache"
    digest = hashlib.sha256(resolved.uri.encode()).hexdigest()[:12]
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
            model_dir, tokenizer_dir = _transformers_layout(root, resolved.requested)
            staging = Path(tmp) / "package"
            shutil.copytree(model_dir, staging / "model")
            shutil.copytree(tokenizer_dir, staging / "tokenizer")
            config = json.loads((model_dir / "config.json").read_text())
            tokenizer_config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
            positions = int(config.get("max_position_embeddings", 512))
            meta = {
                "model": resolved.label,
                "id2label": config["id2label"],
                "max_length": int(min(tokenizer_config.get("model_max_length", positions), positions)),
                "max_position_embeddings": positions,
            }
            (staging / META_FILE).write_text(json.dumps(meta))
            zipped = shutil.make_archive(str(Path(tmp) / name), "zip", staging)
            shutil.rmtree(target, ignore_errors=True)
            staging.replace(target)
            Path(zipped).replace(archive)
    meta = json.loads((target / META_FILE).read_text())
    id2label = {int(k): v for k, v in meta["id2label"].items()}
    return ModelPackage(archive.name, target, archive, id2label, meta["max_length"])


def ship(spark: SparkSession, package: ModelPackage) -> None:
    """Make the package available to every executor (unpacked as ``SparkFiles.get(archive_name)``)."""
    already = {Path(p).name for p in spark.sparkContext.listArchives}
    if package.archive_name not in already:
        spark.sparkContext.addArchive(str(package.archive))
