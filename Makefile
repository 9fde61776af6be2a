# Two commands matter:  make demo  (train + score end to end on embedded defaults)  and  make test.
SHELL := /bin/bash
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Real IMDB beside the repo when present, else the Hugging Face Hub (needs network).
IMDB_DATA ?= $(if $(wildcard ../shared/data/imdb/train.parquet),$(abspath ../shared/data/imdb),hf:imdb)
# SST sentences graded 1-5 (the demo's three-class model): a folder with sentences_train/_dev.parquet.
SST_DATA ?= $(if $(wildcard ../shared/data/sst/sentences_train.parquet),$(abspath ../shared/data/sst),sst)
SPARK_SENTIMENT_DATA ?= $(CURDIR)/data
export IMDB_DATA SST_DATA SPARK_SENTIMENT_DATA

PYTEST_ARGS ?=

.PHONY: install jars airflow-env demo test test-fast soak lint clean help runtime-venvs test-runtimes

help:
	@echo "make demo   - create the venv if missing, train + register on embedded defaults, score a Delta table"
	@echo "make test   - install if missing and run the test suite (everything but GPU tests)"
	@echo "make test-runtimes - the runtime matrix: each runtimes/*.toml package set, the wheel on top, end to end"

# uv installs the exact set from its cache, which the runtime matrix's venvs share (hard links: one copy of
# torch's CUDA build on disk for the venv and the `latest` profile); pip stays in the venv for users' commands.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt uv
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -c constraints.txt -e '.[spark,mlflow,server,embedded,openvino,test]'
	@touch $@

install: $(STAMP)

# Delta jars (and hadoop-aws, which the tests' S3 server needs) come from Maven Central through Spark's
# resolver (cached in ~/.ivy2*); this warms the cache, and builds the class-data archive that the tests' JVMs
# map their classes from (tests/jvm_classes.py; ~1 min once per JDK and pyspark, else the tests build it).
jars: install
	$(PY) -c "from spark_sentiment.core.session import get_spark; from spark_sentiment.core.spark_conf import \
	hadoop_aws_maven_coordinate as aws; get_spark('resolve-jars', {'spark.jars.packages': aws()}).stop()"
	$(PY) tests/jvm_classes.py

# Airflow's own environment for the DAG check in tests/test_deploy.py (Airflow is not a dependency of this
# project; its scheduler runs its own Python). Built once per checkout, like the jar cache; the test builds
# it through this target when it is missing.
AIRFLOW_VENV := .venv-airflow
$(AIRFLOW_VENV)/.installed: tests/airflow-requirements.txt
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON_BOOT) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/airflow-requirements.txt
	@touch $@

airflow-env: $(AIRFLOW_VENV)/.installed

UNSUP_SPLIT := $(if $(filter hf:%,$(IMDB_DATA)),unsupervised,unsup)
DEMO_ROWS ?= 3000

# Train a three-class model (IMDB + SST) and register it, land unlabeled reviews in Delta, score them, count
# labels with SQL.
demo: install
	./spark-submit.sh jobs/train.py --config conf/demo.yaml
	./spark-submit.sh jobs/ingest.py --source $(IMDB_DATA) --split $(UNSUP_SPLIT) --table demo_reviews --limit $(DEMO_ROWS)
	./spark-submit.sh jobs/score.py --config conf/demo-score.yaml
	./spark-submit.sh jobs/sql.py "SELECT text_sentiment, count(*) AS reviews FROM demo_reviews_scored GROUP BY 1 ORDER BY 1"
	@echo "Model: models:/SentimentAnalysis@champion in sqlite:///$(SPARK_SENTIMENT_DATA)/mlflow/mlflow.db"
	@echo "MLflow UI: $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(SPARK_SENTIMENT_DATA)/mlflow/mlflow.db"

# One process (on 2 cores the suite keeps both busy already: -n 2 took 15.2 min against 11.6 in one process;
# PYTEST_ARGS="-n 4 --dist loadgroup" spreads it over pytest-xdist workers on bigger machines, the MiniLM
# tests then share one worker).
test: install
	$(PY) -m pytest -m "not gpu and not soak and not runtimes" $(PYTEST_ARGS)

soak: install
	$(PY) -m pytest -m soak $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check lib jobs tests benchmarks docs runtimes
	$(VENV)/bin/ruff format --check lib jobs tests benchmarks docs runtimes

test-fast: install
	$(PY) -m pytest -m "not gpu and not slow and not soak and not runtimes" $(PYTEST_ARGS)

# The runtime matrix (tests/test_runtime_matrix.py, marker `runtimes`): a venv per managed runtime's package
# set, built once into .runtimes/ (uv hard-links shared wheels between them), the wheel installed on top, the
# core path end to end through the console entry points, and the model move from latest into Fabric 1.3's
# MLflow; one test per profile and step, and a table of profile x step at the end. RUNTIMES="fabric-1.3 latest"
# runs some (CI does, with MOVE_MODEL=tiny). One profile at a time: on 2 cores each job keeps both busy.
RUNTIMES ?=
MOVE_MODEL ?= minilm
MOVE_REVIEWS ?= 500
MOVE ?= $(if $(RUNTIMES),$(if $(and $(filter latest,$(RUNTIMES)),$(filter fabric-1.3,$(RUNTIMES))),latest:fabric-1.3),latest:fabric-1.3)
MATRIX := $(PY) -m pytest -m runtimes tests/test_runtime_matrix.py --runtimes "$(RUNTIMES)"
runtime-venvs: install
	$(MATRIX) -k test_venv

test-runtimes: install
	$(MATRIX) -v --move "$(MOVE)" --move-model $(MOVE_MODEL) --move-reviews $(MOVE_REVIEWS) $(PYTEST_ARGS)

clean:
	rm -rf data .pytest_cache
