#!/usr/bin/env bash
# Submit a job of this project to Spark:  ./spark-submit.sh jobs/<job>.py [job args]
#
# Works from any working directory. Ships lib/spark_sentiment as a zip (--py-files), adds the Delta
# package and confs, and runs on $SPARK_MASTER (default local[*]).
#   SPARK_MASTER            e.g. spark://host:7077, yarn, k8s://https://... (default local[*])
#   SPARK_SUBMIT_OPTS_EXTRA extra spark-submit options, word-split (e.g. "--executor-memory 4g --num-executors 4")
#   SPARK_SENTIMENT_DATA    local state: warehouse + metastore (local masters only), MLflow store (default <repo>/data)
#   PYTHON                  interpreter with the project installed (default <repo>/.venv/bin/python)
#   SPARK_SENTIMENT_JARS_CACHE  where the Delta package's resolved jar list is kept (default ~/.cache/spark-sentiment)
#   EXECUTOR_ENV            a packed Python environment for executors on hosts that lack this venv (a venv-pack
#                           or conda-pack .tar.gz, local or on any Hadoop path): shipped with --archives and
#                           unpacked as ./env in each executor, which runs ./env/bin/python; the driver keeps $PY
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
if [ ! -x "$PY" ]; then
  echo "error: $PY not found; run 'make install' in $ROOT first (or set PYTHON)" >&2
  exit 2
fi
if [ $# -lt 1 ]; then
  echo "usage: $0 jobs/<job>.py [--config FILE] [--set key=value ...]" >&2
  exit 2
fi
job="$1"; shift
if [ ! -f "$job" ] && [ -f "$ROOT/$job" ]; then job="$ROOT/$job"; fi
if [ ! -f "$job" ]; then
  echo "error: job file $job not found" >&2
  exit 2
fi

export SPARK_SENTIMENT_DATA="${SPARK_SENTIMENT_DATA:-$ROOT/data}"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$PY}"          # executors' Python workers: the venv's interpreter
export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$PY}"
export PYTHONPATH="$ROOT/lib${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$SPARK_SENTIMENT_DATA/dist"

# The library travels to executors as a zip, rebuilt on every submit so it is never stale.
zip="$SPARK_SENTIMENT_DATA/dist/spark_sentiment.zip"
"$PY" - "$ROOT/lib" "$zip" <<'PYZIP'
import pathlib, sys, zipfile
root, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
tmp = target.with_suffix(".tmp")
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
    for path in sorted((root / "spark_sentiment").rglob("*.py")):
        zf.write(path, path.relative_to(root))
tmp.replace(target)
PYZIP

# Delta's jars and confs, from the one place the library keeps them (spark_sentiment.core.spark_conf).
# A local master also gets a local catalog (warehouse + Derby metastore under $SPARK_SENTIMENT_DATA); any
# other master keeps the cluster's own catalog (hive-site.xml, spark-defaults.conf). --conf options in
# SPARK_SUBMIT_OPTS_EXTRA come later on the command line and win over both.
master="${SPARK_MASTER:-local[*]}"
case "$master" in
  local*) export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"  # a local run binds to loopback, unwarned
          mapfile -t delta_args < <("$PY" -m spark_sentiment.core.spark_conf --local "$SPARK_SENTIMENT_DATA") ;;
  *) mapfile -t delta_args < <("$PY" -m spark_sentiment.core.spark_conf) ;;
esac
# Spark resolves --packages through Ivy on every submit and prints its ~90-line report each time. The first
# submit of a package set on this machine resolves it once (Ivy's report goes to a log file beside the list)
# and records the jars Ivy retrieved; later submits pass those files with --jars, which Spark ships as it
# ships packages. A recorded jar gone from Ivy's folder resolves again. Runs in a subshell ($(...)).
JARS_CACHE="${SPARK_SENTIMENT_JARS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spark-sentiment}"
recorded_jars() {  # $1: list file; prints comma-separated paths when every recorded jar is there
  local line
  [ -s "$1" ] || return 1
  while read -r line; do [ -f "$line" ] || return 1; done < "$1"
  paste -sd, "$1"
}
resolved_jars() {  # $1: comma-separated Maven coordinates; prints comma-separated jar paths
  local coords="$1" key list log dir jars=() line
  key="$(printf '%s' "$coords" | cksum | cut -d' ' -f1)"
  list="$JARS_CACHE/jars-$key.txt"
  recorded_jars "$list" && return
  mkdir -p "$JARS_CACHE"
  exec 9> "$JARS_CACHE/resolve.lock"
  flock 9  # concurrent submits resolve one at a time (Ivy's cache is not safe for concurrent writers)
  recorded_jars "$list" && return
  log="$JARS_CACHE/ivy-$key.log"
  echo "spark-submit.sh: resolving $coords once for this machine (Ivy's report: $log)" >&2
  : > "$JARS_CACHE/resolve-only.py"
  if ! "$(dirname "$PY")/spark-submit" --master local --packages "$coords" "$JARS_CACHE/resolve-only.py" \
      > "$log" 2>&1; then
    cat "$log" >&2
    echo "error: resolving $coords failed (is Maven Central reachable?); the report is above and in $log" >&2
    exit 1
  fi
  dir="$(sed -n 's/^The jars for the packages stored in: //p' "$log" | tail -1)"
  # "modules in use": every module Ivy retrieved into $dir as group_artifact-version.jar (evicted ones are not)
  while read -r line; do
    jars+=("$dir/$line")
  done < <(sed -n '/:: modules in use:/,/:: evicted modules:\|------/p' "$log" \
             | sed -n 's/^[[:space:]]*\([^#[:space:]]*\)#\([^;]*\);\([^[:space:]]*\) from .*/\1_\2-\3.jar/p')
  if [ ${#jars[@]} -eq 0 ]; then
    echo "error: no jars found in Ivy's report $log" >&2
    exit 1
  fi
  for line in "${jars[@]}"; do
    [ -f "$line" ] || { echo "error: Ivy reported $line but it is missing ($log)" >&2; exit 1; }
  done
  printf '%s\n' "${jars[@]}" > "$list.tmp" && mv "$list.tmp" "$list"
  paste -sd, "$list"
}
for i in "${!delta_args[@]}"; do
  if [ "${delta_args[$i]}" = "--packages" ]; then
    delta_args[$i]="--jars"
    delta_args[$((i + 1))]="$(resolved_jars "${delta_args[$((i + 1))]}")"
  fi
done
# Executors' Python: this venv's interpreter (hosts that share its path), or a packed environment.
executor_python="$PYSPARK_PYTHON"
env_args=()
if [ -n "${EXECUTOR_ENV:-}" ]; then
  executor_python="./env/bin/python"
  env_args=(--archives "$EXECUTOR_ENV#env" --conf "spark.pyspark.python=$executor_python"
            --conf "spark.pyspark.driver.python=$PYSPARK_DRIVER_PYTHON")
fi
java_opts="-Dlog4j2.configurationFile=file:$ROOT/conf/log4j2.properties -Dderby.system.home=$SPARK_SENTIMENT_DATA"

# shellcheck disable=SC2086  # SPARK_SUBMIT_OPTS_EXTRA is word-split on purpose
exec "$(dirname "$PY")/spark-submit" \
  --master "$master" \
  "${delta_args[@]}" \
  --py-files "$zip" \
  ${env_args[@]+"${env_args[@]}"} \
  --driver-java-options "$java_opts" \
  --conf "spark.executorEnv.PYSPARK_PYTHON=$executor_python" \
  ${SPARK_SUBMIT_OPTS_EXTRA:-} \
  "$job" "$@"
