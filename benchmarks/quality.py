"""Quality benchmark: train named variants and score a fixed test sample with the native engine's predictor.

Prints one table (accuracy and F1 on the test sample, predicted-positive fraction, training seconds, scoring
rows/s, machine) and writes ``benchmarks/results/quality_<tag>.json``. Training uses the training job's
``build_trainer`` and truncation window; scoring uses :class:`inference.predictor.Predictor` over a model
package laid out as the scoring job ships it, so the numbers are those of the jobs' own code. Neither Spark
nor MLflow is needed (a bare GPU box runs it).

Test sample: 2,000 reviews of the IMDB test split drawn with a fixed seed (``--test-rows all`` scores the
whole split and reports the sample's figures too). Train and eval rows are drawn as the training job draws
them (``shuffle(seed=data.seed)``; eval rows from the test split).

    # CPU, today's demo against a candidate:
    python benchmarks/quality.py --imdb ../shared/data/imdb --tag cpu \\
        --variant "demo-head:train.truncation=head,scores=model" --variant "demo:scores=model+fast" \\
        --config conf/demo.yaml
    # GPU, everything on the full test split (IMDB carried as a benchmarks/gpu_bundle.py bundle):
    python benchmarks/quality.py --bundle BUNDLE --base MINILM_DIR --test-rows all --tag h100 \\
        --variant "seed:data.train_rows=3000,scores=model"

A registered model instead of trained variants (``--model``; e.g. ``make demo``'s champion): three-class figures
on SST dev (``--sst``: accuracy and macro-F1 over NEGATIVE/NEUTRAL/POSITIVE, binary accuracy on the sentences
without grade 3), the IMDB sample read as positive vs negative probability, the share of IMDB reviews labeled
NEUTRAL, the expected calibration error of each, and both granularities on the same 1,000 IMDB reviews
(labels, rows/s):

    MLFLOW_TRACKING_URI=sqlite:///data/mlflow/mlflow.db python benchmarks/quality.py --imdb ../shared/data/imdb \
        --sst ../shared/data/sst --model models:/SentimentAnalysis@champion --tag cpu_three_class

A variant is ``NAME:key=value,...``: training config overrides (``train.*``, ``data.train_rows``,
``model.score_max_length``; applied over ``--config``) and ``scores=A+B+...``, the scoring windows to
measure: ``model`` (as recorded with the model), ``fast`` (``score.profile: fast``) or ``<strategy><length>``
such as ``head512`` or ``head_tail256``, each optionally ``@fp32``/``@bf16`` (``score.precision``; the table
gives each scoring's label agreement with the variant's first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))

TEST_SAMPLE_SEED = 2026
TEST_SAMPLE_ROWS = 2000


def load_frames(args) -> dict[str, pd.DataFrame]:
    if args.bundle:
        from gpu_train import load_splits

        frames = load_splits(argparse.Namespace(bundle=args.bundle))
        return {"train": frames["train"], "test": frames["test"]}
    root = args.imdb.rstrip("/")
    return {split: pd.read_parquet(f"{root}/{split}.parquet", columns=["text", "label"]) for split in ("train", "test")}


def shuffled(n: int, seed: int, rows: int | None, start: int = 0) -> np.ndarray:
    """Row positions of ``datasets.Dataset.shuffle(seed=seed).select(range(start, start + rows))``
    (datasets draws the permutation with numpy's default_rng; checked in tests/test_truncation.py)."""
    order = np.random.default_rng(seed).permutation(n)
    return order[start : None if rows is None else start + rows]


def encoded(tokenizer, window, frame: pd.DataFrame, index: np.ndarray):
    """Token ids through the training window, as the training job tokenizes."""
    from gpu_train import Encoded
    from spark_sentiment.model.window import encode

    part = frame.iloc[index]
    return Encoded(encode(tokenizer, part["text"].tolist(), window), part["label"].astype(int).tolist())


def parse_variant(spec: str) -> tuple[str, list[str], list[str]]:
    name, _, rest = spec.partition(":")
    overrides, scores = [], ["model"]
    for item in filter(None, rest.split(",")):
        if item.startswith("scores="):
            scores = item.split("=", 1)[1].split("+")
        else:
            overrides.append(item)
    return name, overrides, scores


def score_options(spec: str, base):
    from dataclasses import replace

    spec, _, precision = spec.partition("@")
    if precision:
        base = replace(base, precision=precision)
    if spec == "model":
        return base
    if spec == "fast":
        return replace(base, profile="fast")
    found = re.fullmatch(r"(head_tail|head|tail)(\d+)", spec)
    if not found:
        raise ValueError(f"scores: {spec!r} is not model, fast or <head|tail|head_tail><length> (+ @fp32/@bf16)")
    return replace(base, truncation=found.group(1), max_length=int(found.group(2)))


def metrics(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    tp = int(((predicted == 1) & (labels == 1)).sum())
    fp = int(((predicted == 1) & (labels == 0)).sum())
    fn = int(((predicted == 0) & (labels == 1)).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {
        "accuracy": round(float((predicted == labels).mean()), 4),
        "f1": round(f1, 4),
        "positive": round(float(predicted.mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imdb", help="folder with train.parquet and test.parquet (any fsspec-free local path)")
    parser.add_argument("--bundle", help="folder made by benchmarks/gpu_bundle.py (instead of --imdb)")
    parser.add_argument("--base", default="embedded:all-MiniLM-L6-v2", help="model.base of every variant")
    parser.add_argument("--config", help="training config the variants' overrides apply to (e.g. conf/demo.yaml)")
    parser.add_argument("--variant", action="append", default=[], help="NAME:key=value,...,scores=A+B")
    parser.add_argument("--test-rows", default=str(TEST_SAMPLE_ROWS), help="test rows to score, or all")
    parser.add_argument("--score-batch", type=int, help="score.batch_size (default 32 on CPU, 256 on GPU)")
    parser.add_argument("--tag", default="cpu", help="results file: benchmarks/results/quality_<tag>.json")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--model", help="measure this registered model (models:/...) instead of training variants")
    parser.add_argument("--sst", help="with --model: folder with SST's sentences_dev.parquet")
    parser.add_argument("--granularity-rows", type=int, default=1000, help="with --model: reviews per granularity")
    args = parser.parse_args()
    if bool(args.imdb) == bool(args.bundle):
        parser.error("give exactly one of --imdb and --bundle")
    if args.model:
        measure_model(args)
        return

    import torch
    import transformers
    from spark_sentiment.config import load_config
    from spark_sentiment.inference.precision import AGREEMENT_KEY, describe_cpu
    from spark_sentiment.inference.predictor import META_FILE, Predictor, PredictorOptions
    from spark_sentiment.model.base import load_base
    from spark_sentiment.training.arguments import build_trainer
    from spark_sentiment.training.config import TrainJobConfig
    from spark_sentiment.training.precision import bf16_agreement, resolve_precision
    from transformers import DataCollatorWithPadding

    gpu = torch.cuda.is_available()
    machine = {
        "device": torch.cuda.get_device_name(0) if gpu else f"cpu: {os.cpu_count()} cores, {describe_cpu()}",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    frames = load_frames(args)
    test = frames["test"]
    sample = np.random.default_rng(TEST_SAMPLE_SEED).permutation(len(test))[:TEST_SAMPLE_ROWS]
    scored = np.arange(len(test)) if args.test_rows == "all" else sample[: int(args.test_rows)]
    in_sample = np.isin(scored, sample)
    texts = test["text"].iloc[scored].reset_index(drop=True)
    labels = test["label"].to_numpy()[scored].astype(int)
    options = PredictorOptions(
        batch_size=args.score_batch or (256 if gpu else 32), threads=None if gpu else os.cpu_count()
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.variant:
        name, overrides, scores = parse_variant(spec)
        cfg = load_config(TrainJobConfig, args.config, [f"model.base={args.base}", *overrides])
        model, tokenizer = load_base(cfg.model.base, cfg.model.labels, cfg.train.max_length, cfg.train.seed)
        model = model.float()  # a carried fp16 base trains with fp32 master weights
        positions = int(getattr(model.config, "max_position_embeddings", 512))
        train_rows = shuffled(len(frames["train"]), cfg.data.seed, cfg.data.train_rows)
        eval_rows = shuffled(len(test), cfg.data.seed, cfg.data.eval_rows)
        window = cfg.training_window().clamp(positions)
        t0 = time.perf_counter()
        train = encoded(tokenizer, window, frames["train"], train_rows)
        evaluation = encoded(tokenizer, window, test, eval_rows)
        with tempfile.TemporaryDirectory() as tmp:
            # train.precision auto as the training job resolves it (timed on this machine)
            collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=cfg.train.pad_to_multiple_of)
            train_section, train_choice = resolve_precision(cfg.train, model, collator, train)
            trainer = build_trainer(train_section, model, tokenizer, train, evaluation, tmp, report_to=[])
            trainer.train()
            train_seconds = time.perf_counter() - t0  # tokenizing + trainer.train() (eval after epochs but the last)
            package = Path(tmp) / "package"
            trainer.model.save_pretrained(package / "model")
            tokenizer.save_pretrained(package / "tokenizer")
            recorded = cfg.scoring_window().clamp(positions)
            meta = {
                "id2label": {str(k): v for k, v in trainer.model.config.id2label.items()},
                "max_length": recorded.max_length,
                "max_position_embeddings": positions,
                "window": recorded.to_config(),
            }
            # the bf16 check the training job records with the model (score precision auto reads it)
            eval_texts = test["text"].iloc[eval_rows].tolist()
            agreement = bf16_agreement(trainer.model, tokenizer, eval_texts, recorded, cfg.train.bf16_check_rows)
            if agreement is not None:
                meta[AGREEMENT_KEY] = agreement.as_dict()
            (package / META_FILE).write_text(json.dumps(meta))
            del trainer, model
            first = None
            for score in scores:
                predictor = Predictor(package, score_options(score, options))
                predictor.predict(texts.iloc[:16])  # warm-up: first-call allocations stay out of the rate
                t1 = time.perf_counter()
                result = predictor.predict(texts)
                seconds = time.perf_counter() - t1
                predicted = (result["label"] == cfg.model.labels[1]).to_numpy().astype(int)
                first = predicted if first is None else first
                row = {
                    "variant": name,
                    "overrides": overrides,
                    "train_rows": len(train_rows),
                    "epochs": cfg.train.epochs,
                    "learning_rate": cfg.train.learning_rate,
                    "train_window": window.to_config(),
                    "train_seconds": round(train_seconds, 1),
                    "scoring": score,
                    "score_window": predictor.window.to_config(),
                    "sample": metrics(predicted[in_sample], labels[in_sample]),
                    "scored_rows": len(texts),
                    "rows_per_s": round(len(texts) / seconds, 1),
                    "precision": str(predictor.dtype).removeprefix("torch."),
                    "precision_choice": predictor.choice.as_dict(),
                    "train_precision": train_choice.as_dict(),
                    "agreement_with_first": round(float((predicted == first).mean()), 5),
                    **({"all": metrics(predicted, labels)} if len(texts) > in_sample.sum() else {}),
                    **machine,
                }
                rows.append(row)
                print("QUALITY", json.dumps(row), flush=True)
                del predictor
            if gpu:
                torch.cuda.empty_cache()
        (out / f"quality_{args.tag}.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))

    print(f"\n{machine['device']}, torch {machine['torch']}, transformers {machine['transformers']}")
    whole = any("all" in r for r in rows)
    print(
        "| variant | train rows x epochs, lr | train window | train s | scoring window | acc (2k) | F1 (2k) "
        "| positive (2k) |" + (" acc (all 25k) |" if whole else "") + " rows/s | precision, agreement "
        "| how the precision was chosen | train precision |"
    )
    print("|---|---|---|---:|---|---:|---:|---:|" + ("---:|" if whole else "") + "---:|---|---|---|")
    for r in rows:
        tw, sw = r["train_window"], r["score_window"]
        print(
            f"| {r['variant']} | {r['train_rows']} x {r['epochs']}, {r['learning_rate']} | "
            f"{tw['window']} {tw['max_length']} | {r['train_seconds']} | {r['scoring']}: {sw['window']} "
            f"{sw['max_length']} | {r['sample']['accuracy']} | {r['sample']['f1']} | {r['sample']['positive']} |"
            + (f" {r['all']['accuracy'] if 'all' in r else ''} |" if whole else "")
            + f" {r['rows_per_s']} | {r['precision']}, {r['agreement_with_first']} | "
            f"{r['precision_choice']['reason']} | {r['train_precision']['chosen']}: "
            f"{r['train_precision']['reason']} |"
        )


GRADES = {1: "NEGATIVE", 2: "NEGATIVE", 3: "NEUTRAL", 4: "POSITIVE", 5: "POSITIVE"}


def measure_model(args) -> None:
    """Figures of one registered model (see the module docstring); one table, JSON beside the others."""
    from dataclasses import replace

    from score_throughput import machine_info
    from sklearn.metrics import f1_score
    from spark_sentiment.inference.engines import checked_package
    from spark_sentiment.inference.predictor import Predictor, PredictorOptions
    from spark_sentiment.model.registry import resolve_model
    from spark_sentiment.monitoring.calibration import expected_calibration_error

    resolved = resolve_model(args.model)
    package = checked_package(resolved)
    options = PredictorOptions(batch_size=args.score_batch or 32, threads=os.cpu_count(), precision="fp32")
    predictor = Predictor(package.local_dir, options)
    labels = predictor.labels
    index = {name: i for i, name in enumerate(labels)}
    pos, neg = index["POSITIVE"], index["NEGATIVE"]

    def probabilities(texts: pd.Series, granularity_predictor=predictor) -> tuple[np.ndarray, pd.DataFrame]:
        result = granularity_predictor.predict(texts.reset_index(drop=True))
        return np.array([[p[name] for name in labels] for p in result["probabilities"]]), result

    rows: dict[str, object] = {"model": resolved.label, "labels": labels}
    if args.sst:
        dev = pd.read_parquet(f"{args.sst.rstrip('/')}/sentences_dev.parquet")
        truth = np.array([index.get(GRADES[g], -1) for g in dev["grade"]])
        p, _ = probabilities(dev["text"])
        predicted = p.argmax(axis=1)
        polar = dev["grade"].to_numpy() != 3
        binary = np.where(p[:, pos] >= p[:, neg], pos, neg)
        rows["sst_dev"] = {
            "rows": len(dev),
            "accuracy": round(float((predicted == truth).mean()), 4) if "NEUTRAL" in index else None,
            "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4) if "NEUTRAL" in index else None,
            "binary_rows": int(polar.sum()),
            "binary_accuracy": round(float((binary[polar] == truth[polar]).mean()), 4),
            "ece": round(expected_calibration_error(p, truth), 4) if "NEUTRAL" in index else None,
            "ece_binary_rows": round(expected_calibration_error(p[polar], truth[polar]), 4),
        }
    frames = load_frames(args)
    test = frames["test"]
    sample = np.random.default_rng(TEST_SAMPLE_SEED).permutation(len(test))[:TEST_SAMPLE_ROWS]
    texts, truth_ids = test["text"].iloc[sample], test["label"].to_numpy()[sample].astype(int)
    truth = np.where(truth_ids == 1, pos, neg)
    predictor.predict(texts.iloc[:16].reset_index(drop=True))  # warm-up
    started = time.perf_counter()
    p, result = probabilities(texts)
    seconds = time.perf_counter() - started
    rows["imdb_sample"] = {
        "rows": len(sample),
        "accuracy_pos_vs_neg": round(float((np.where(p[:, pos] >= p[:, neg], pos, neg) == truth).mean()), 4),
        "accuracy_label": round(float((p.argmax(axis=1) == truth).mean()), 4),
        "neutral_share": round(float((result["label"] == "NEUTRAL").mean()), 4),
        "ece": round(expected_calibration_error(p, truth), 4),
        "rows_per_s": round(len(sample) / seconds, 1),
    }
    sentence_predictor = Predictor(package.local_dir, replace(options, granularity="sentence"))
    part = texts.iloc[: args.granularity_rows].reset_index(drop=True)
    part_truth = truth[: args.granularity_rows]
    granularity = {}
    for name, chosen in (("review", predictor), ("sentence", sentence_predictor)):
        chosen.predict(part.iloc[:16])
        started = time.perf_counter()
        found = chosen.predict(part)
        seconds = time.perf_counter() - started
        label_share = found["label"].value_counts(normalize=True).round(4).to_dict()
        polar = found["label"].isin(["POSITIVE", "NEGATIVE"]).to_numpy()
        right = found["label"].map(index).to_numpy()[polar] == part_truth[polar]
        granularity[name] = {
            "rows_per_s": round(len(part) / seconds, 1),
            "labels": label_share,
            "accuracy_on_polar_labels": round(float(right.mean()), 4) if polar.any() else None,
        }
        if name == "sentence":
            granularity[name]["sentences_per_review"] = round(float(found["sentence_start"].map(len).mean()), 2)
    granularity["sentence_vs_review_rows_per_s"] = round(
        granularity["sentence"]["rows_per_s"] / granularity["review"]["rows_per_s"], 2
    )
    rows["granularity"] = granularity
    machine = machine_info()
    rows["machine"] = machine
    rows["aggregation"] = sentence_predictor.aggregation.to_dict() if sentence_predictor.aggregation else None
    rows["temperature"] = predictor.temperature.to_dict()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"quality_{args.tag}.json").write_text(json.dumps(rows, indent=1))
    low, high = predictor.temperature.per_row([20, 512])
    print(f"\n{resolved.label}: labels {labels}, temperature {low:.3f} at 20 tokens, {high:.3f} at 512")
    print(f"{machine['cpu']}, {machine['cores']} cores, fp32\n")
    print("| set | rows | accuracy | macro-F1 | binary accuracy (pos vs neg) | NEUTRAL share | ECE |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    if "sst_dev" in rows:
        d = rows["sst_dev"]
        print(
            f"| SST dev sentences | {d['rows']} | {d['accuracy']} | {d['macro_f1']} | {d['binary_accuracy']} "
            f"({d['binary_rows']} without grade 3) | - | {d['ece']} |"
        )
    d = rows["imdb_sample"]
    print(
        f"| IMDB 2,000-review sample (review granularity) | {d['rows']} | {d['accuracy_label']} | - | "
        f"{d['accuracy_pos_vs_neg']} | {d['neutral_share']} | {d['ece']} |"
    )
    print(f"\n| granularity ({len(part)} IMDB reviews) | rows/s | labels | accuracy where POSITIVE/NEGATIVE |")
    print("|---|---:|---|---:|")
    for name in ("review", "sentence"):
        g = granularity[name]
        print(f"| {name} | {g['rows_per_s']} | {g['labels']} | {g['accuracy_on_polar_labels']} |")
    print(f"\nsentence / review rows/s: {granularity['sentence_vs_review_rows_per_s']}")


if __name__ == "__main__":
    main()
