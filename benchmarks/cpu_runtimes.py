"""CPU inference runtimes for one registered model, side by side in one process (issue 34's measured table).

Candidates, each on the same reviews through the model's recorded window (512 tokens, head + tail), batched
as the native engine batches (length-sorted, ``--batch`` rows), ``--threads`` threads:

* torch fp32 and torch bf16 (the weights in bf16): what ``score.precision`` chooses between today;
* ONNX Runtime fp32 and static int8 (QDQ: 8-bit activations calibrated on ``--calibration`` reviews of the
  model's own kind, per-channel int8 weights, MatMul/Gemm only: softmax, LayerNorm and GELU stay fp32);
* OpenVINO fp32, bf16 (``INFERENCE_PRECISION_HINT``) and int8 (the same QDQ model, which OpenVINO runs as
  int8 kernels);
* torch's own compiled path: inductor (``torch.compile``, frozen weights) in bf16, with dynamic shapes and
  (``torch-static``) with lengths padded to a few static buckets, one compile each, and static
  int8 through PT2E with the x86 inductor quantizer (torchao's ``prepare_pt2e``/``convert_pt2e``: per-channel
  int8 weights, uint8 activations calibrated by a histogram observer on ``--calibration`` reviews), every
  Linear, or with the FFN output projections (whose inputs, after GELU, carry BERT's activation outliers), the
  pooler and the classifier kept in bf16, and that again with SmoothQuant-style scaling (``--smooth`` alpha) of
  the query/key/value and FFN input projections; bf16 autocast elsewhere.

For each: rows/s (after a warm-up batch), labels equal to torch fp32, accuracy on the reviews' labels, and the
one-off cost (export, calibration, compile). ONNX Runtime, OpenVINO and torchao are not project dependencies:
install them beside the venv to run this (``pip install --target DIR onnxruntime openvino onnx ml_dtypes
flatbuffers openvino-telemetry torchao --no-deps`` and ``PYTHONPATH=DIR``); ``--runtimes`` picks the families.

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


def compiled_forward(module, autocast: bool):
    """``forward(ids, mask) -> logits`` of a compiled module (called with the two tensors, or as a HF model)."""
    import torch

    def forward(ids, mask):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = module(torch.from_numpy(ids), torch.from_numpy(mask))
            return (out if isinstance(out, torch.Tensor) else out.logits).float().numpy()

    return forward


def padded_to(forward, multiple: int, pad_id: int):
    """``forward`` on batches padded to a multiple of ``multiple`` tokens (a few static shapes to compile)."""

    def padded(ids, mask):
        extra = -ids.shape[1] % multiple
        ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=pad_id)
        return forward(ids, np.pad(mask, ((0, 0), (0, extra))))

    return padded


def input_maxima(model, calibration_ids, pad_id) -> dict:
    """Per input channel, the largest |activation| each Linear of ``model`` sees on the calibration texts."""
    import torch
    from spark_sentiment.model.window import pad

    maxima, hooks = {}, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):

            def hook(_module, inputs, _output, name=name):
                seen = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
                maxima[name] = torch.maximum(maxima[name], seen) if name in maxima else seen

            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        for batch in batches_of(calibration_ids, 8):
            ids, mask = pad([calibration_ids[i] for i in batch], pad_id)
            model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    for handle in hooks:
        handle.remove()
    return maxima


def smoothed(model, calibration_ids, pad_id, alpha: float):
    """A copy of a BERT-style ``model`` whose query/key/value and FFN input projections compute
    ``linear(x / s)`` with weight columns times ``s`` (SmoothQuant: ``s = max|x|^alpha / max|W|^(1-alpha)``
    per input channel): the same function, with activation outliers moved into the weights. The division is
    an explicit op: BERT's LayerNorms are post-norm, their outputs also feed the residual, so ``s`` cannot be
    folded into them."""
    import copy

    import torch

    model = copy.deepcopy(model)
    maxima = input_maxima(model, calibration_ids, pad_id)

    class Scaled(torch.nn.Module):
        def __init__(self, linear, scale):
            super().__init__()
            self.linear = linear
            self.register_buffer("inverse", 1.0 / scale)

        def forward(self, x):
            return self.linear(x * self.inverse)

    def scaled(name, linear):
        weight = linear.weight.abs().amax(0).clamp(min=1e-5)
        scale = (maxima[name].clamp(min=1e-5) ** alpha / weight ** (1 - alpha)).clamp(min=1e-5)
        with torch.no_grad():
            linear.weight.mul_(scale)
        return Scaled(linear, scale)

    for i, layer in enumerate(model.base_model.encoder.layer):
        prefix = f"{model.base_model_prefix}.encoder.layer.{i}."
        attention = layer.attention.self
        for key in ("query", "key", "value"):
            setattr(attention, key, scaled(prefix + f"attention.self.{key}", getattr(attention, key)))
        layer.intermediate.dense = scaled(prefix + "intermediate.dense", layer.intermediate.dense)
    return model


def pt2e_int8(model, calibration_ids, example, pad_id, kept: str | None, alpha: float):
    """Static int8 through PT2E: ``model`` exported with dynamic batch and length, the x86 inductor quantizer
    (per-channel weights, histogram-calibrated uint8 activations) on every Linear but those whose names match
    ``kept``, calibrated, converted and compiled by inductor; bf16 autocast for the rest."""
    import re

    import torch
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    from spark_sentiment.model.window import pad
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    source = smoothed(model, calibration_ids, pad_id, alpha) if alpha else model

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    rows, tokens = torch.export.Dim("rows", min=1, max=1024), torch.export.Dim("tokens", min=8, max=512)
    graph = torch.export.export(
        Logits(source),
        tuple(torch.from_numpy(a) for a in example),
        dynamic_shapes=({0: rows, 1: tokens}, {0: rows, 1: tokens}),
        strict=False,
    ).module()
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    for name, module in source.named_modules():
        if kept and isinstance(module, torch.nn.Linear) and re.search(kept, name.replace(".linear", "")):
            quantizer.set_module_name_qconfig(f"inner.{name}", None)
    prepared = prepare_pt2e(graph, quantizer)
    for batch in batches_of(calibration_ids, 8):
        ids, mask = pad([calibration_ids[i] for i in batch], pad_id)
        prepared(torch.from_numpy(ids), torch.from_numpy(mask))
    return compiled_forward(torch.compile(convert_pt2e(prepared)), autocast=True)


def exported(args, model, tokenizer, batches, pad_id, calibration_ids, record) -> None:
    """ONNX Runtime and OpenVINO on the model exported to ONNX (fp32) and its static int8 QDQ version."""
    import torch

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imdb", required=True, help="folder with test.parquet")
    parser.add_argument("--model", required=True, help="registered model URI")
    parser.add_argument("--rows", type=int, default=400, help="test reviews scored by every candidate")
    parser.add_argument("--calibration", type=int, default=64, help="train reviews that calibrate int8")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    families = "torch-compiled,torch-static,onnxruntime,openvino"
    parser.add_argument("--runtimes", default=families, help="families to run (torch fp32 and bf16 always run)")
    parser.add_argument("--bucket", type=int, default=128, help="torch-static: lengths padded to multiples of it")
    parser.add_argument("--smooth", type=float, default=0.5, help="SmoothQuant alpha of the smoothed int8 row")
    parser.add_argument("--out", default=str(HERE / "results" / "cpu_runtimes.json"))
    args = parser.parse_args()

    import torch
    from score_throughput import machine_info
    from spark_sentiment.inference.engines import checked_package
    from spark_sentiment.model.registry import resolve_model
    from spark_sentiment.model.window import encode, pad
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
    calibration_ids = encode(tokenizer, calibration_texts, window)
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

    families = args.runtimes.split(",")
    # inductor folds the weights into constants of the compiled graph (no parameter reads at run time)
    import torch._inductor.config

    torch._inductor.config.freezing = True
    record("torch fp32", torch_forward(torch.float32), 0.0)
    record("torch bf16", torch_forward(torch.bfloat16), 0.0)

    if "torch-compiled" in families:
        first = pad([token_ids[i] for i in batches[0]], pad_id)
        started = time.perf_counter()
        compiled = compiled_forward(
            torch.compile(AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.bfloat16).eval()),
            autocast=False,
        )
        compiled(*first)
        record("torch inductor bf16 (frozen, dynamic shapes)", compiled, time.perf_counter() - started)
        keep = r"(layer\.\d+\.output\.dense$|classifier|pooler)"
        for name, kept, alpha in (
            ("every Linear", None, 0.0),
            ("FFN output, pooler, classifier kept bf16", keep, 0.0),
            (f"as the last, SmoothQuant {args.smooth} on QKV and FFN input", keep, args.smooth),
        ):
            started = time.perf_counter()
            forward = pt2e_int8(model, calibration_ids, first, pad_id, kept, alpha)
            forward(*first)
            seconds = time.perf_counter() - started
            record(f"torch int8 static (PT2E x86 inductor), {name}; bf16 elsewhere", forward, seconds)

    if "torch-static" in families:
        started = time.perf_counter()
        bf16 = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
        bucketed = padded_to(compiled_forward(torch.compile(bf16, dynamic=False), autocast=False), args.bucket, pad_id)
        for batch in batches:  # one compile per shape, paid here
            bucketed(*pad([token_ids[i] for i in batch], pad_id))
        note = f"lengths padded to multiples of {args.bucket}"
        record("torch inductor bf16 (frozen, static shapes)", bucketed, time.perf_counter() - started, note)

    if {"onnxruntime", "openvino"} & set(families):
        exported(args, model, tokenizer, batches, pad_id, calibration_ids, record)

    machine = machine_info()
    Path(args.out).write_text(json.dumps({"machine": machine, "model": args.model, "rows": rows}, indent=1))
    print(
        f"\n{machine['cpu']}, {machine['cores']} cores; {len(texts)} IMDB test reviews, window {window.to_config()}, "
        f"batch {args.batch}, {args.threads} threads\n"
    )
    print("| runtime | rows/s | vs faster of torch fp32/bf16 | labels = fp32 | accuracy | one-off seconds | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    best = max(r["rows_per_s"] for r in rows if r["runtime"] in ("torch fp32", "torch bf16"))  # today's choice
    for r in rows:
        print(
            f"| {r['runtime']} | {r['rows_per_s']} | {r['rows_per_s'] / best:.2f}x | {r['agreement_with_torch_fp32']} "
            f"| {r['accuracy']} | {r['setup_seconds']} | {r['note']} |"
        )


if __name__ == "__main__":
    main()
