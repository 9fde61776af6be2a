#!/usr/bin/env bash
# One-command GPU check of the native engine's executor side (prints a table; about 3-5 minutes on an H100/H200).
#   benchmarks/gpu_check.sh MODEL_PACKAGE_DIR UNSUP_PARQUET [extra gpu_check.py args]
# MODEL_PACKAGE_DIR: data/model_cache/<model>-<hash> after a scoring run (model/, tokenizer/, sentiment_meta.json).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-$(command -v python3)}"
[ $# -ge 2 ] || { echo "usage: $0 MODEL_PACKAGE_DIR UNSUP_PARQUET [args]" >&2; exit 2; }
model="$1"; data="$2"; shift 2
PYTHONUNBUFFERED=1 "$py" "$here/gpu_check.py" --model-dir "$model" --data "$data" --out "${OUT:-$here/results}" "$@"
