#!/usr/bin/env bash
# The quality benchmark's GPU run (issue 14), one device call of ~7 minutes on an H100:
#   1. `make demo` candidates (CPU recipes, trained in fp32) on the fixed 2,000-review test sample;
#   2. the default training profile (conf/train.yaml: the seed's 3,000 rows) on all 25,000 test reviews;
#   3. conf/train-gpu.yaml (all 25,000 train rows) on all 25,000 test reviews.
# Needs .gpu/bundle (benchmarks/gpu_bundle.py) and .gpu/minilm (the embedded MiniLM saved in fp16 so that
# both fit the 64 MiB a device call carries); see docs/performance.md. Results: $OUT/quality_gpu_*.json.
set -uo pipefail
out="${OUT:-benchmarks/results}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
q=(python3 benchmarks/quality.py --bundle .gpu/bundle --base .gpu/minilm --out "$out")
w=train.dataloader_workers=0  # forked loader workers would switch the tokenizers' threads off for scoring
f=train.precision=fp32        # demo candidates train as on a CPU
"${q[@]}" --tag gpu_demo --config conf/demo.yaml \
  --variant "demo-head:$f,train.truncation=head,scores=model+head512" \
  --variant "demo-ht:$f,scores=model+head_tail256+head_tail512" \
  --variant "demo-ht-lr1e-4:$f,train.learning_rate=1e-4,scores=head_tail256+head_tail512" \
  --variant "demo-ht-lr2e-4:$f,train.learning_rate=2e-4,scores=head_tail256+head_tail512" \
  --variant "demo-ht-4k-64:$f,data.train_rows=4000,train.max_length=64,train.learning_rate=1e-4,scores=head_tail256+head_tail512" \
  --variant "demo-ht-1k-256:$f,data.train_rows=1000,train.max_length=256,train.learning_rate=1e-4,scores=head_tail512" \
  2>&1 | tee "$out/quality_gpu_demo.log" | grep -v "^QUALITY"
"${q[@]}" --tag gpu_seed --config conf/train.yaml --test-rows all \
  --variant "seed-ht:$w,scores=model" \
  --variant "seed-head:$w,train.truncation=head,scores=model" \
  --variant "seed-ht-lr1e-4:$w,train.learning_rate=1e-4,scores=model" \
  --variant "seed-ht-lr5e-5:$w,train.learning_rate=5e-5,scores=model" \
  2>&1 | tee "$out/quality_gpu_seed.log" | grep -v "^QUALITY"
"${q[@]}" --tag gpu_full --config conf/train-gpu.yaml --test-rows all \
  --variant "full-ht:$w,scores=model+fast" \
  --variant "full-head:$w,train.truncation=head,scores=model" \
  2>&1 | tee "$out/quality_gpu_full.log" | grep -v "^QUALITY"
