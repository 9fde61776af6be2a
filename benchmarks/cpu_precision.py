"""CPU runtime and precision of the native engine's executor code: what ``score.precision: auto`` chooses
against torch fp32 and bf16, same rows, one run.

Each variant runs in a process of its own, as a Spark Python worker would (so each one's peak RSS is its
own, from the predictor's build on): ``Predictor`` built with the variant's options (the probe, conversions
and compiles included and timed), a warm-up, then ``Predictor.predict`` over IMDB test reviews (the quality
benchmark's seeded 2,000-review sample by default) at the model's recorded window. The table gives rows/s,
the speed against the faster of torch fp32 and bf16 measured in the same run, labels equal to torch fp32's,
accuracy, peak RSS and the one-off seconds; the CPU is named.

    MLFLOW_TRACKING_URI=sqlite:///data/mlflow/mlflow.db .venv/bin/python benchmarks/cpu_precision.py \\
        --model models:/SentimentAnalysis@champion
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))

TEST_SAMPLE_SEED = 2026  # benchmarks/quality.py's IMDB sample
# name -> (score.precision, score.runtime)
VARIANTS = {
    "torch fp32": ("fp32", "torch"),
    "torch bf16": ("bf16", "torch"),
    "auto, torch": ("auto", "torch"),
    "openvino fp32": ("fp32", "openvino"),
    "openvino bf16": ("bf16", "openvino"),
    "openvino int8": ("int8", "openvino"),
    "auto": ("auto", "auto"),
}
BASELINES = ("torch fp32", "torch bf16")


def sample(args) -> pd.DataFrame:
    test = pd.read_parquet(f"{args.imdb.rstrip('/')}/test.parquet", columns=["text", "label"])
    order = np.random.default_rng(TEST_SAMPLE_SEED).permutation(len(test))[: args.rows]
    return test.iloc[order].reset_index(drop=True)


def reset_peak_rss() -> None:
    """Start this process's peak RSS (VmHWM) afresh (Linux: ``/proc/self/clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def peak_rss_mb() -> float:
    """This process's peak RSS since :func:`reset_peak_rss`, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def run_variant(args) -> None:
    """One variant in this process; prints one JSON line."""
    from spark_sentiment.inference.predictor import Predictor, PredictorOptions

    precision, runtime = VARIANTS[args.variant]
    frame = sample(args)
    reset_peak_rss()  # reading the parquet file peaks higher than a worker holding a few thousand reviews
    options = PredictorOptions(
        batch_size=args.batch_size, threads=args.threads, device="cpu", precision=precision, runtime=runtime
    )
    started = time.perf_counter()
    predictor = Predictor(args.model_dir, options)
    load_seconds = time.perf_counter() - started
    predictor.predict(frame["text"].head(args.batch_size))  # warm-up
    started = time.perf_counter()
    out = predictor.predict(frame["text"])
    seconds = time.perf_counter() - started
    record = {
        "variant": args.variant,
        "chosen": predictor.choice.chosen,
        "reason": predictor.choice.reason,
        "probe_rows_per_s": predictor.choice.rows_per_s,
        "prepare_seconds": predictor.choice.prepare_seconds,
        "load_seconds": round(load_seconds, 2),
        "rows_per_s": round(len(frame) / seconds, 2),
        "peak_rss_mb": peak_rss_mb(),
        "labels": out["label"].tolist(),
        # IMDB's reviews are positive or negative: a three-class model is right when POSITIVE >= NEGATIVE
        "positive": [int(p["POSITIVE"] >= p["NEGATIVE"]) for p in out["probabilities"]],
    }
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="registered model URI (packaged as the scoring job does)")
    parser.add_argument("--model-dir", help="a model package folder instead of --model")
    parser.add_argument("--imdb", default=os.environ.get("IMDB_DATA", str(HERE.parent.parent / "shared/data/imdb")))
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--variants", default=";".join(VARIANTS), help="separated by ;, of: " + "; ".join(VARIANTS))
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # a child process: run this one variant
    parser.add_argument("--out", default=str(HERE / "results" / "cpu_precision.json"))
    args = parser.parse_args()
    if args.variant:
        run_variant(args)
        return

    from score_throughput import machine_info
    from spark_sentiment.inference.precision import describe_cpu

    if not args.model_dir:
        from spark_sentiment.inference.engines import checked_package
        from spark_sentiment.model.registry import resolve_model

        args.model_dir = str(checked_package(resolve_model(args.model)).local_dir)
    names = [n.strip() for n in args.variants.split(";")]
    names = [n for n in BASELINES if n not in names] + names  # the baselines always run, first
    truth = sample(args)["label"].to_numpy()
    records = {}
    for name in names:
        command = [sys.executable, __file__, "--variant", name, "--model-dir", args.model_dir, "--imdb", args.imdb]
        command += ["--rows", str(args.rows), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        records[name] = json.loads(done.stdout.strip().splitlines()[-1])
    reference = np.array(records["torch fp32"]["labels"])
    best = max(records[n]["rows_per_s"] for n in BASELINES)
    table = []
    for record in records.values():
        labels, positive = np.array(record.pop("labels")), np.array(record.pop("positive"))
        table.append(
            {
                **record,
                "vs_best_torch": round(record["rows_per_s"] / best, 3),
                "labels_equal_torch_fp32": round(float((labels == reference).mean()), 4),
                "accuracy": round(float((positive == truth).mean()), 4),
            }
        )
    print(
        f"\n{args.rows} IMDB test reviews (quality sample), model window, batch {args.batch_size}, "
        f"{args.threads} threads, one process per variant; CPU: {describe_cpu()}"
    )
    header = f"{'variant':<18} {'chosen':<14} {'rows/s':>7} {'x best':>7} {'= fp32':>7} {'acc':>7} {'RSS MB':>7}"
    print(header + "  one-off s")
    for r in table:
        one_off = sum(r["prepare_seconds"].values())
        print(
            f"{r['variant']:<18} {r['chosen']:<14} {r['rows_per_s']:>7} {r['vs_best_torch']:>7} "
            f"{r['labels_equal_torch_fp32']:>7} {r['accuracy']:>7} {r['peak_rss_mb']:>7}  {one_off:.1f}"
        )
    Path(args.out).parent.mkdir(exist_ok=True)
    record = {"machine": machine_info(), "cpu": describe_cpu(), "args": vars(args), "table": table}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
