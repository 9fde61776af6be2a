"""Move a model version from one MLflow store to another, across MLflow and transformers releases: the seed's
own workflow, training on a GPU VM or in Databricks (MLflow 3, transformers 5) and scoring in Fabric (MLflow
2.12, transformers 4.37, no GPU).

On the source, MLflow's own CLI exports the version's files (weights, tokenizer, the truncation window's
loader in ``code/``, MLmodel with signature and input example)::

    mlflow artifacts download --artifact-uri models:/SentimentAnalysis@champion --dst-path SentimentAnalysis-v3

MLflow has no command that registers such a folder in another store (``mlflow-export-import`` needs the full
``mlflow`` on both sides and the same major release), so on the target this module does::

    spark-sentiment-model import SentimentAnalysis-v3 --name SentimentAnalysis --alias champion

It checks the folder is a model this project can score (an MLmodel with the transformers flavor, the window
loader, weights, tokenizer), loads it with the target's transformers before anything is written, logs the
files as a run's ``model`` artifacts, registers a new version with the given aliases and tags it with where it
came from. Bad input writes nothing and ends in one ``error:`` line, exit 2.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..config.cli import CommandParser, run_command
from ..config.sections import MlflowSection
from ..core.errors import ModelError
from . import compat

SOURCE_TAG = "spark_sentiment.imported_from"  # model version tag: the source's model URI and MLflow release


def _local_copy(source: str, into: Path) -> Path:
    """``source`` as a local folder: a folder as it is, anything else through MLflow's artifact download
    (``models:/`` and ``runs:/`` of the current store, ``s3://``, ``gs://``, ``file:/`` ...)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if ":/" not in source:  # neither scheme:// nor file:/ -- a folder that is not there
        raise ModelError(f"model source {source}: no such folder")
    import mlflow

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(into)))
    except Exception as exc:  # MLflow raises several types for a missing or unreadable location
        raise ModelError(f"model source {source} cannot be downloaded: {str(exc).splitlines()[0]}") from exc


def read_mlmodel(folder: Path, source: str) -> dict[str, Any]:
    """The MLmodel of an exported model, checked to be one this project scores."""
    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        raise ModelError(f"model source {source}: no MLmodel file (export one with: mlflow artifacts download ...)")
    try:
        spec = yaml.safe_load(mlmodel.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ModelError(
            f"model source {source}: MLmodel is not valid YAML ({getattr(exc, 'problem', exc)}{where})"
        ) from exc
    flavors = (spec or {}).get("flavors") or {}
    if "transformers" not in flavors or "python_function" not in flavors:
        raise ModelError(
            f"model source {source}: not a transformers model with a pyfunc flavor (flavors: {sorted(flavors)})"
        )
    weights = flavors["transformers"].get("model_binary", "model")
    if not (folder / weights).is_dir():
        raise ModelError(f"model source {source}: the weights folder {weights!r} named by MLmodel is missing")
    return spec


def check_loads(folder: Path, spec: dict[str, Any], source: str) -> dict[str, Any]:
    """Load the model's config, tokenizer and weights with this environment's transformers (what scoring
    will do), so a model this release cannot read is refused before anything is registered."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    flavor = spec["flavors"]["transformers"]
    weights = folder / flavor.get("model_binary", "model")
    tokenizer_dir = folder / "components" / "tokenizer"
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir if tokenizer_dir.is_dir() else weights))
        model = AutoModelForSequenceClassification.from_pretrained(str(weights))
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError ... for unreadable files
        raise ModelError(
            f"model source {source}: transformers {compat.transformers_version()} cannot load it: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    return {"labels": dict(model.config.id2label), "tokenizer": type(tokenizer).__name__}


def _portable_mlmodel(spec: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The MLmodel as this store's MLflow expects it: the new run, and no MLflow 3 logged-model id where
    this MLflow has no logged models."""
    spec = dict(spec)
    spec["run_id"] = run_id
    spec["artifact_path"] = "model"
    if not compat.has_logged_models():
        spec.pop("model_id", None)
    return spec


def import_model(source: str, name: str, aliases: Sequence[str], mlflow_section: MlflowSection) -> dict[str, Any]:
    """Register the exported model at ``source`` as a new version of ``name`` in the MLflow store that
    ``mlflow_section`` names (its experiment receives the import run). Nothing is written to that store
    before the model has been checked and loaded.

    Returns
    -------
    dict
        ``name``, ``version``, ``aliases``, ``model_uri``, ``run_id``, ``source``, what the model reads and
        its labels.

    Raises
    ------
    ModelError
        The source is not a model this project scores, or this environment's transformers cannot load it.
    """
    import mlflow

    from . import tracking
    from .flavor import METADATA_KEY

    mlflow.set_tracking_uri(tracking.tracking_uri(mlflow_section, local=True))  # a models:/ source is read here
    with tempfile.TemporaryDirectory(prefix="spark-sentiment-import-") as tmp:
        folder = _local_copy(source, Path(tmp) / "download")
        spec = read_mlmodel(folder, source)
        loaded = check_loads(folder, spec, source)
        window = (spec.get("metadata") or {}).get(METADATA_KEY)
        staged = Path(tmp) / "model"
        shutil.copytree(folder, staged)
        tracking.configure(mlflow_section, local=True)  # the first write: the experiment, if new
        with mlflow.start_run(run_name=f"import {name}") as run:
            (staged / "MLmodel").write_text(yaml.safe_dump(_portable_mlmodel(spec, run.info.run_id), sort_keys=False))
            mlflow.log_artifacts(str(staged), artifact_path="model")
            origin = {"source": source, "source_mlflow": spec.get("mlflow_version"), "source_run": spec.get("run_id")}
            mlflow.set_tags({"job": "import", SOURCE_TAG: json.dumps(origin)})
            mlflow.log_dict({"window": window, **origin, **loaded}, "import.json")
        version = str(mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(name, version, SOURCE_TAG, json.dumps(origin))
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version)
    return {
        "status": "imported",
        "name": name,
        "version": version,
        "aliases": list(aliases),
        "model_uri": f"models:/{name}/{version}",
        "run_id": run.info.run_id,
        "source": source,
        "source_mlflow": spec.get("mlflow_version"),
        "target_mlflow": compat.mlflow_version(),
        "target_transformers": compat.transformers_version(),
        "window": window,
        **loaded,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``spark-sentiment-model``: ``import FOLDER --name NAME [--alias A ...]``. Flags only,
    no config file (one action on one folder); runs on the commands' one runner (the JSON summary last on
    stdout; one scrubbed ``error:`` line and exit 2 on bad input)."""
    parser = CommandParser(description="Register an exported MLflow model in this MLflow store.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    imported = commands.add_parser(
        "import", help="register a model folder exported with `mlflow artifacts download` as a new version"
    )
    imported.add_argument("source", help="the exported folder (or a models:/, runs:/, s3:// ... artifact URI)")
    imported.add_argument("--name", required=True, help="registered model name (three parts in Unity Catalog)")
    imported.add_argument("--alias", action="append", default=[], help="alias to set on the new version (repeat)")
    imported.add_argument("--experiment", default="sentiment-import", help="MLflow experiment of the import run")
    imported.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else local)")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    section = MlflowSection(tracking_uri=args.tracking_uri, experiment=args.experiment)
    return run_command(lambda: import_model(args.source, args.name, args.alias, section))


if __name__ == "__main__":
    sys.exit(main())
