"""``spark-sentiment-model import``: a registered version exported with MLflow's artifact download lands in
another MLflow store as a new version with its alias, origin and labels; bad input writes nothing there. The
move across releases (latest -> Fabric 1.3's MLflow 2.12 and transformers 4.37) is the runtime matrix's
``--move`` (make test-runtimes; CI)."""

from __future__ import annotations

import json
import shutil

import mlflow
import pandas as pd
import pytest
import yaml
from spark_sentiment.inference.engines import checked_package
from spark_sentiment.inference.package import META_FILE
from spark_sentiment.model.registry import resolve_model
from spark_sentiment.model.transfer import SOURCE_TAG, main
from support.commands import call_main
from support.data import NEGATIVE, POSITIVE
from support.mlflow_uris import mlflow_uris_restored

pytestmark = pytest.mark.slow


@pytest.fixture
def other_store(tmp_path):
    """A second MLflow store; the session's tracking and registry URIs are restored afterwards."""
    with mlflow_uris_restored():
        yield f"sqlite:///{tmp_path}/other/mlflow.db"


def test_an_exported_version_is_registered_in_another_store_with_its_labels(tiny_model, tmp_path, other_store):
    export = tmp_path / "export"
    # what `mlflow artifacts download --artifact-uri models:/TinySentiment/1 --dst-path export` does
    mlflow.artifacts.download_artifacts(artifact_uri=tiny_model["model_uri"], dst_path=str(export))
    source_model = mlflow.pyfunc.load_model(tiny_model["model_uri"])
    (tmp_path / "other").mkdir()

    args = ["import", str(export), "--name", "Moved", "--alias", "champion", "--tracking-uri", other_store]
    code, out, err = call_main(main, args)
    assert code == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["status"], summary["version"], summary["aliases"]) == ("imported", "1", ["champion"])
    recorded = yaml.safe_load((export / "MLmodel").read_text())["metadata"]["spark_sentiment_window"]
    assert summary["window"] == recorded and summary["labels"] == {"0": "NEGATIVE", "1": "POSITIVE"}

    client = mlflow.MlflowClient(other_store, other_store)
    version = client.get_model_version_by_alias("Moved", "champion")
    assert str(version.version) == "1"
    assert json.loads(version.tags[SOURCE_TAG])["source"] == str(export)
    texts = pd.Series(POSITIVE + NEGATIVE)
    moved = mlflow.pyfunc.load_model("models:/Moved@champion").predict(texts)
    pd.testing.assert_frame_equal(moved, source_model.predict(texts))

    # a second import is a new version; the alias follows it
    code, out, err = call_main(main, args)
    assert code == 0, err[-3000:]
    assert str(client.get_model_version_by_alias("Moved", "champion").version) == "2"


@pytest.mark.parametrize(
    "content, message",
    [
        ({}, "no MLmodel file"),
        ({"MLmodel": "flavors:\n  sklearn: {}\n"}, "not a transformers model with a pyfunc flavor"),
        ({"MLmodel": "flavors: [unclosed\n"}, "MLmodel is not valid YAML"),
        (
            {"MLmodel": "flavors:\n  transformers: {model_binary: model}\n  python_function: {}\n"},
            "the weights folder 'model' named by MLmodel is missing",
        ),
    ],
)
def test_a_folder_that_is_no_model_is_refused_and_nothing_is_written(tmp_path, other_store, content, message):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    for name, text in content.items():
        (folder / name).write_text(text)
    store = tmp_path / "other"
    code, out, err = call_main(main, ["import", str(folder), "--name", "Moved", "--tracking-uri", other_store])
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(f"error: model source {folder}: {message}"), err[-2000:]
    assert not store.exists()  # not even the store's database file


def test_a_missing_source_is_named(tmp_path, other_store):
    code, out, err = call_main(
        main, ["import", str(tmp_path / "nowhere"), "--name", "M", "--tracking-uri", other_store]
    )
    assert code == 2 and err.strip().splitlines()[-1] == f"error: model source {tmp_path / 'nowhere'}: no such folder"


def test_the_same_name_and_version_in_two_registries_are_two_packages(tiny_model, tmp_path, other_store):
    # dev and prod registries both hold Twin/1, different models: scoring against one after the other (one
    # driver, one package cache) must package each registry's own, never the one cached first
    export = tmp_path / "export"
    mlflow.artifacts.download_artifacts(artifact_uri=tiny_model["model_uri"], dst_path=str(export))
    recalibrated = tmp_path / "recalibrated"
    shutil.copytree(export, recalibrated)
    config_file = recalibrated / "model" / "config.json"
    config = json.loads(config_file.read_text())
    config.update({"spark_sentiment_temperature": 2.5, "spark_sentiment_temperature_length": None})
    config_file.write_text(json.dumps(config))
    (tmp_path / "other").mkdir()
    dev = f"sqlite:///{tmp_path}/dev.db"
    for store, folder in ((dev, export), (other_store, recalibrated)):
        code, _, err = call_main(main, ["import", str(folder), "--name", "Twin", "--tracking-uri", store])
        assert code == 0, err[-3000:]
    packaged = {}
    for store in (dev, other_store):  # (set_registry_uri exports $MLFLOW_REGISTRY_URI, which imports would read)
        mlflow.set_tracking_uri(store)
        mlflow.set_registry_uri(store)
        resolved = resolve_model("models:/Twin/1")
        package = checked_package(resolved)
        meta = json.loads((package.local_dir / META_FILE).read_text())
        packaged[store] = (package.local_dir, meta["temperature"]["value"])
    assert packaged[other_store][1] == 2.5 and packaged[dev][1] != 2.5
    assert packaged[other_store][0] != packaged[dev][0]
