"""CPU inference runtimes for one registered model, side by side in one process (issue 34's measured table).

Candidates, each on the same reviews through the model's recorded window (512 tokens, head + tail), batched
as the native engine batches (length-sorted, ``--batch`` rows), ``--threads`` threads:

* torch fp32 and torch bf16 (the weights in bf16): what ``score.precision`` chooses between today;
* ONNX Runtime fp32 and static int8 (QDQ: 8-bit activations calibrated on ``--calibration`` reviews of the
  model's own kind, per-channel int8 weights, MatMul/Gemm only: softmax, LayerNorm and GELU stay fp32);
* OpenVINO fp32, bf16 (``INFERENCE_PRECISION_HINT``) and int8 (the same QDQ model, which OpenVINO runs as
  int8 kernels).

For each: rows/s (after a warm-up batch), labels equal to torch fp32, accuracy on the reviews' labels, and the
one-off cost (export, calibration, compile). ONNX Runtime and OpenVINO are not project dependencies: install
them beside the venv to run this (``pip install --target DIR onnxruntime openvino onnx ml_dtypes
flatbuffers openvino-telemetry --no-deps`` and ``PYTHONPATH=DIR``).

    MLFLOW_TRACKING_URI=sqlite:///data/mlflow/mlflow.db PYTHONPATH=/tmp/spike python benchmarks/cpu_runtimes.py \\
        --imdb ../shared/data/imdb --model models:/SentimentAnalysis@champion --rows 400
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def batches_of(token_ids: list[list[int]], rows: int) -> list[np.ndarray]:
    from spark_sentiment.inference.predictor import length_batches

    return length_batches(np.array([len(t) for t in token_ids]), rows)


def run(forward, token_ids, batches, pad_id) -> tuple[np.ndarray, float]:
    """Logits of every row (``forward(ids, mask) -> logits``), and the seconds it took after one warm-up batch."""
    from spark_sentiment.model.window import pad

    warm = batches[len(batches) // 2]
    forward(*pad([token_ids[i] for i in warm], pad_id))
    results = {}
    started = time.perf_counter()
    for batch in reversed(batches):
        ids, mask = pad([token_ids[i] for i in batch], pad_id)
        logits = forward(ids, mask)
        for row, index in enumerate(batch):
            results[int(index)] = logits[row]
    seconds = time.perf_counter() - started
    out = np.stack([results[i] for i in range(len(token_ids))])
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imdb", required=True, help="folder with test.parquet")
    parser.add_argument("--model", required=True, help="registered model URI")
    parser.add_argument("--rows", type=int, default=400, help="test reviews scored by every candidate")
    parser.add_argument("--calibration", type=int, default=64, help="train reviews that calibrate int8")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default=str(HERE / "results" / "cpu_runtimes.json"))
    args = parser.parse_args()

    import torch
    from score_throughput import machine_info
    from spark_sentiment.inference.engines import checked_package
    from spark_sentiment.model.registry import resolve_model
    from spark_sentiment.model.window import encode
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(args.threads)
    package = checked_package(resolve_model(args.model))
    root = Path(package.local_dir)
    model_dir = next(p.parent for p in root.rglob("config.json") if (p.parent / "model.safetensors").exists())
    tokenizer_dir = next(p.parent for p in root.rglob("tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    window = package.window
    test = pd.read_parquet(f"{args.imdb.rstrip('/')}/test.parquet")
    sample = np.random.default_rng(7).permutation(len(test))[: args.rows]
    texts, truth = test["text"].iloc[sample].tolist(), test["label"].to_numpy()[sample]
    train = pd.read_parquet(f"{args.imdb.rstrip('/')}/train.parquet")
    calibration_texts = train["text"].sample(args.calibration, random_state=7).tolist()
    token_ids = encode(tokenizer, texts, window)
    batches = batches_of(token_ids, args.batch)
    pad_id = tokenizer.pad_token_id or 0
    positive = {v: k for k, v in model.config.id2label.items()}.get("POSITIVE")
    negative = {v: k for k, v in model.config.id2label.items()}.get("NEGATIVE")

    rows, reference = [], None

    def record(name: str, forward, setup_seconds: float, note: str = "") -> None:
        nonlocal reference
        logits, seconds = run(forward, token_ids, batches, pad_id)
        labels = logits.argmax(axis=1)
        reference = labels if reference is None else reference
        polar = np.where(logits[:, positive] >= logits[:, negative], 1, 0)
        row = {
            "runtime": name,
            "rows_per_s": round(len(texts) / seconds, 1),
            "agreement_with_torch_fp32": round(float((labels == reference).mean()), 4),
            "accuracy": round(float((polar == truth).mean()), 4),
            "setup_seconds": round(setup_seconds, 1),
            "note": note,
        }
        rows.append(row)
        print("RUNTIME", json.dumps(row), flush=True)

    def torch_forward(dtype):
        copy = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype).eval()

        def forward(ids, mask):
            with torch.inference_mode():
                return (
                    copy(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.float().numpy()
                )

        return forward

    record("torch fp32", torch_forward(torch.float32), 0.0)
    record("torch bf16", torch_forward(torch.bfloat16), 0.0)

    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "model.onnx", Path(tmp) / "model-int8.onnx"
        started = time.perf_counter()
        example = tokenizer(["a short example"] * 2, return_tensors="pt")
        torch.onnx.export(
            model,
            (example["input_ids"], example["attention_mask"]),
            str(fp32_path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
            opset_version=17,
            dynamo=False,
        )
        export_seconds = time.perf_counter() - started

        import onnxruntime as ort
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from spark_sentiment.model.window import pad

        calibration_ids = encode(tokenizer, calibration_texts, window)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.batches = iter(batches_of(calibration_ids, 8))

            def get_next(self):
                batch = next(self.batches, None)
                if batch is None:
                    return None
                ids, mask = pad([calibration_ids[i] for i in batch], pad_id)
                return {"input_ids": ids, "attention_mask": mask}

        started = time.perf_counter()
        quantize_static(
            str(fp32_path),
            str(int8_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            nodes_to_exclude=[],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        quantize_seconds = time.perf_counter() - started

        def ort_forward(path):
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            return lambda ids, mask: session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]

        record("onnxruntime fp32", ort_forward(fp32_path), export_seconds, ort.__version__)
        record(
            "onnxruntime int8 static (QDQ, per-channel)",
            ort_forward(int8_path),
            export_seconds + quantize_seconds,
            f"calibrated on {args.calibration} train reviews",
        )

        import openvino as ov

        core = ov.Core()

        def ov_forward(path, precision):
            started = time.perf_counter()
            config = {"INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": precision}
            compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
            request = compiled.create_infer_request()
            seconds = time.perf_counter() - started

            def forward(ids, mask):
                return request.infer({"input_ids": ids, "attention_mask": mask})[compiled.outputs[0]]

            return forward, seconds

        forward, seconds = ov_forward(fp32_path, "f32")
        record("openvino fp32", forward, export_seconds + seconds, ov.__version__)
        forward, seconds = ov_forward(fp32_path, "bf16")
        record("openvino bf16", forward, export_seconds + seconds)
        forward, seconds = ov_forward(int8_path, "bf16")
        record("openvino int8 (the QDQ model), bf16 elsewhere", forward, export_seconds + quantize_seconds + seconds)
        forward, seconds = ov_forward(int8_path, "f32")
        record("openvino int8 (the QDQ model), fp32 elsewhere", forward, export_seconds + quantize_seconds + seconds)

    machine = machine_info()
    Path(args.out).write_text(json.dumps({"machine": machine, "model": args.model, "rows": rows}, indent=1))
    print(
        f"\n{machine['cpu']}, {machine['cores']} cores; {len(texts)} IMDB test reviews, window {window.to_config()}, "
        f"batch {args.batch}, {args.threads} threads\n"
    )
    print("| runtime | rows/s | vs torch best | labels = torch fp32 | accuracy | one-off seconds | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    best = max(r["rows_per_s"] for r in rows if r["runtime"].startswith("torch"))
    for r in rows:
        print(
            f"| {r['runtime']} | {r['rows_per_s']} | {r['rows_per_s'] / best:.2f}x | {r['agreement_with_torch_fp32']} "
            f"| {r['accuracy']} | {r['setup_seconds']} | {r['note']} |"
        )


if __name__ == "__main__":
    main()
