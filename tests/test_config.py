"""Config files, --set overrides and validation errors (no Spark needed)."""

from __future__ import annotations

import os

import pytest
from spark_sentiment.config import describe, load_config
from spark_sentiment.core.errors import ConfigError
from spark_sentiment.model.window import Window
from spark_sentiment.scoring.config import ScoreJobConfig
from spark_sentiment.training.config import TrainJobConfig
from spark_sentiment.validation.config import EvaluateJobConfig
from support.data import REPO
from support.mlflow_uris import mlflow_uris_restored

TRAIN_YAML = REPO / "conf" / "train.yaml"


def test_train_yaml_is_the_seed_data_with_the_measured_minilm_settings(monkeypatch):
    monkeypatch.setenv("IMDB_DATA", "/data/imdb")
    cfg = load_config(TrainJobConfig, TRAIN_YAML)
    assert cfg.data.path == "/data/imdb"
    assert (cfg.data.train_rows, cfg.data.eval_rows, cfg.data.seed) == (3000, 300, 42)
    assert (cfg.train.learning_rate, cfg.train.warmup_ratio, cfg.train.epochs) == (5e-5, 0.1, 3.0)
    assert cfg.training_window() == Window("head_tail", 512)
    assert (cfg.train.batch_size, cfg.train.weight_decay, cfg.train.max_length) == (16, 0.01, 512)
    assert (cfg.registry.name, cfg.registry.alias) == ("SentimentAnalysis", "candidate")


def test_seed_profile_uses_the_hub_model_and_dataset():
    cfg = load_config(TrainJobConfig, REPO / "conf" / "train-seed.yaml")
    assert cfg.model.base == "microsoft/deberta-v3-small"
    assert cfg.data.path == "hf:imdb"
    assert cfg.model.pipeline_batch_size == 8
    assert cfg.training_window() == cfg.scoring_window() == Window("head", 512)  # truncation=True in the seed


def test_gpu_profile_trains_on_all_rows_with_the_measured_settings():
    cfg = load_config(TrainJobConfig, REPO / "conf" / "train-gpu.yaml")
    assert (cfg.data.train_rows, cfg.train.batch_size, cfg.train.learning_rate) == (None, 32, 1e-4)
    assert (cfg.train.group_by_length, cfg.train.optim, cfg.train.pad_to_multiple_of) == (
        True,
        "adamw_torch_fused",
        8,
    )


def test_env_default_applies_when_variable_unset(monkeypatch):
    monkeypatch.delenv("IMDB_DATA", raising=False)
    assert load_config(TrainJobConfig, TRAIN_YAML).data.path == "hf:imdb"


def test_set_values_are_read_as_yaml():
    cfg = load_config(
        TrainJobConfig,
        TRAIN_YAML,
        ["train.max_steps=5", "train.learning_rate=3e-5", "model.labels=[neg, pos]", "data.train_rows=null"],
    )
    assert cfg.train.max_steps == 5
    assert cfg.train.learning_rate == 3e-5
    assert cfg.model.labels == ["neg", "pos"]
    assert cfg.data.train_rows is None


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.colour=red", "unknown config key 'data.colour'"),
        ("nosuch.key=1", "unknown config key 'nosuch'"),
        ("train.epochs=two", "config key 'train.epochs' must be a number"),
        ("train.batch_size=1.5", "config key 'train.batch_size' must be an integer"),
        ("train.epochs=0", "config key 'train.epochs' must be positive"),
        ("train.precision=fp8", "config key 'train.precision' must be one of auto, fp32, bf16, fp16"),
        ("train.pad_to_multiple_of=0", "config key 'train.pad_to_multiple_of' must be positive or null, got 0"),
        ("train.dataloader_workers=-1", "config key 'train.dataloader_workers' must be >= 0"),
        ("data.train_rows=-3", "config key 'data.train_rows' must be an integer >= 0 or null"),
        ("data.train_rows=0", "config key 'data.train_rows' must be a positive integer or null, got 0"),
        ("model.labels=[only]", "config key 'model.labels' needs at least two names"),
        ("registry.alias=1st", "config key 'registry.alias'"),
        ("train=3", "config section 'train' must be a mapping"),
        ("train.max_length", "--set expects dotted.key=value"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(TrainJobConfig, TRAIN_YAML, [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found: /nope.yaml"):
        load_config(TrainJobConfig, "/nope.yaml")


def test_score_config_needs_exactly_one_input_and_keys_for_merge():
    with pytest.raises(ConfigError, match="input.path' or input.table: set exactly one"):
        load_config(ScoreJobConfig, None, ["output.path=/tmp/o"])
    with pytest.raises(ConfigError, match="'input.key_columns' must be set when output.mode is merge"):
        load_config(ScoreJobConfig, None, ["input.path=/tmp/i", "output.path=/tmp/o", "output.mode=merge"])
    cfg = load_config(ScoreJobConfig, REPO / "conf" / "score.yaml", ["engine=mlflow", "input.text_columns=[a, b]"])
    assert (cfg.engine, cfg.input.text_columns, cfg.output.mode) == ("mlflow", ["a", "b"], "incremental")


@pytest.mark.parametrize(
    "override, message",
    [
        ("output.mode=incremental", "'input.key_columns' must be set when output.mode is incremental"),
        ("output.batch_id=-1", "'output.batch_id' must be >= 0"),
        ("output.max_retries=99", r"'output.max_retries' must be in \[0, 20\]"),
        ("output.table=db.t; DROP TABLE x", "'output.table' must be a table name"),
        ("input.key_columns=[id, id]", "'input.key_columns' has duplicates"),
        ("score.runtime=onnx", "'score.runtime' must be one of auto, torch, openvino"),
    ],
)
def test_score_write_options_are_validated(override, message):
    with pytest.raises(ConfigError, match=message):
        output = [] if override.startswith("output.table") else ["output.path=/tmp/o"]
        load_config(ScoreJobConfig, None, ["input.path=/tmp/i", *output, override])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["score.device=cuda", "score.runtime=openvino"], "'score.runtime' openvino runs on the CPU"),
        (["score.precision=int8", "score.runtime=torch"], "'score.precision' int8 is OpenVINO's, on the CPU"),
        (["score.precision=int8", "score.device=cuda"], "'score.precision' int8 is OpenVINO's"),
        (["score.int8_min_agreement=1.5"], r"'score.int8_min_agreement' must be in \[0, 1\], got 1.5"),
    ],
)
def test_openvino_and_int8_settings_are_checked(settings, message):
    with pytest.raises(ConfigError, match=message):
        load_config(ScoreJobConfig, None, ["input.path=/tmp/i", "output.path=/tmp/o", *settings])


def test_batch_id_is_refused_with_incremental():
    keys = ["input.path=/i", "output.path=/o", "input.key_columns=[id]", "output.mode=incremental"]
    with pytest.raises(ConfigError, match="'output.batch_id' cannot be combined with mode incremental"):
        load_config(ScoreJobConfig, None, [*keys, "output.batch_id=3"])


def test_section_defaults_survive_partial_overrides():
    cfg = load_config(ScoreJobConfig, None, ["input.path=/i", "output.path=/o", "mlflow.tracking_uri=sqlite:///x.db"])
    assert cfg.mlflow.experiment == "sentiment-scoring"  # the scoring job's own default, not training's


def test_every_key_has_help():
    for cls in (TrainJobConfig, ScoreJobConfig, EvaluateJobConfig):
        rows = describe(cls)
        assert rows and all(help_text for _, _, _, help_text in rows), [r[0] for r in rows if not r[3]]


def test_train_job_config_error_fails_before_spark_with_one_line(tmp_path, monkeypatch, capsys):
    from spark_sentiment.core import session
    from spark_sentiment.training.job import main

    def no_spark(*_args, **_kwargs):
        raise AssertionError("the job started Spark before failing")

    monkeypatch.setattr(session, "get_spark", no_spark)
    monkeypatch.setenv("SPARK_SENTIMENT_DATA", str(tmp_path))
    assert main(["--set", "data.colour=red"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1].startswith("error: unknown config key 'data.colour'")
    assert captured.out == ""


def test_train_job_missing_data_path_fails_with_one_line_before_mlflow(spark, tmp_path, monkeypatch, capsys):
    """Data paths are checked through Spark's Hadoop file systems (any scheme), so the session exists; the
    job still stops before any MLflow run, store or model version."""
    from spark_sentiment.training.job import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    assert main(["--set", "data.path=/no/such/imdb"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1].startswith("error: data.path: /no/such/imdb does not exist")
    assert captured.out == ""
    assert not (tmp_path / "mlflow").exists()  # nothing registered, no store created


def test_set_path_replaces_the_files_table():
    cfg = load_config(ScoreJobConfig, REPO / "conf" / "score.yaml", ["input.path=/lake/in", "output.path=/lake/out"])
    assert (cfg.input.path, cfg.input.table, cfg.output.path, cfg.output.table) == ("/lake/in", None, "/lake/out", None)
    with pytest.raises(ConfigError, match="set exactly one"):
        load_config(ScoreJobConfig, None, ["input.path=/a", "input.table=b", "output.path=/o"])


def test_configuration_reference_is_generated_from_the_dataclasses():
    """docs/configuration.md is what docs/generate_configuration.py writes: it cannot drift from the code."""
    import runpy

    generator = runpy.run_path(str(REPO / "docs" / "generate_configuration.py"), run_name="docs")
    assert (REPO / "docs" / "configuration.md").read_text() == generator["render"]()
    text = generator["render"]()
    for cls in (TrainJobConfig, ScoreJobConfig, EvaluateJobConfig):
        assert all(f"| `{key}` |" in text for key, *_ in describe(cls))


@pytest.mark.parametrize(
    "name, ok",
    [
        ("reviews", True),
        ("main.reviews.scored", True),
        ("`my-catalog`.ml.Sentiment", True),  # Unity Catalog names with characters that need quoting
        ("`a``b`.c", True),
        ("a.b.c.d", False),
        ("`unclosed.b", False),
        ("reviews; DROP TABLE x", False),
        ("s3a://lake/reviews", False),
    ],
)
def test_table_names_accept_unity_catalog_and_backticks_only(name, ok):
    overrides = [f"input.table={name}", "output.path=/lake/out"]
    if ok:
        assert load_config(ScoreJobConfig, None, overrides).input.table == name
    else:
        with pytest.raises(ConfigError, match="must be a table name"):
            load_config(ScoreJobConfig, None, overrides)


def test_mlflow_stores_as_the_platform_configures_them(monkeypatch, tmp_path):
    from spark_sentiment.config.sections import MlflowSection
    from spark_sentiment.model import tracking

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DATABRICKS_RUNTIME_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPARK_SENTIMENT_DATA", str(tmp_path))
    # Local runs fall back to SQLite under the data dir; a cluster run with no store fails with one line.
    assert tracking.tracking_uri(MlflowSection(), local=True) == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    with pytest.raises(ConfigError, match="mlflow.tracking_uri: not set") as raised:
        tracking.tracking_uri(MlflowSection(), local=False)
    assert "\n" not in str(raised.value)
    # Inside a Databricks runtime: the workspace tracking server and Unity Catalog registry.
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    assert tracking.tracking_uri(MlflowSection(), local=False) == "databricks"
    assert tracking.registry_uri(MlflowSection(), "databricks") == "databricks-uc"
    # The environment wins over defaults, config over the environment; the registry is its own setting.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://registry.internal:5000")
    section = MlflowSection()
    assert tracking.tracking_uri(section, local=False) == "http://mlflow.internal:5000"
    assert tracking.registry_uri(section, "http://mlflow.internal:5000") == "http://registry.internal:5000"
    section = MlflowSection(tracking_uri="sqlite:///t.db", registry_uri="sqlite:///r.db")
    assert (tracking.tracking_uri(section), tracking.registry_uri(section, "sqlite:///t.db")) == (
        "sqlite:///t.db",
        "sqlite:///r.db",
    )


def test_configure_uses_a_separate_registry_and_leaves_the_environment_alone(monkeypatch, tmp_path):
    import mlflow
    from spark_sentiment.config.sections import MlflowSection
    from spark_sentiment.model import tracking

    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    tracking_store, registry_store = f"sqlite:///{tmp_path}/t.db", f"sqlite:///{tmp_path}/r.db"
    with mlflow_uris_restored():
        tracking.configure(MlflowSection(tracking_uri=tracking_store, registry_uri=registry_store, experiment="x"))
        assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (tracking_store, registry_store)
        mlflow.MlflowClient().create_registered_model("OnlyInRegistry")
        assert mlflow.MlflowClient(registry_uri=registry_store).get_registered_model("OnlyInRegistry")
        assert (tmp_path / "r.db").exists()
        assert "MLFLOW_REGISTRY_URI" not in os.environ  # a later run in this process resolves afresh
