"""Benchmark (not a test): int8 vs fp32 latency of exported artifacts, and onnxruntime int8 layouts.

Models are timed in interleaved rounds (the VM is noisy: compare ratios from one run). Extra ONNX int8
layouts are quantized from the fp32 artifact (the exported int8 is QDQ U8S8 per-channel on convs only):
S8S8 / U8S8 QDQ on every op, S8S8 on convs, per-tensor QDQ, QOperator (QLinearConv).

Example: python tests/export/export_int8_bench.py dist/ --name student --threads 2 --rounds 10
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def _ort_session(path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    shape = session.get_inputs()[0].shape
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    return lambda: session.run(None, {name: x})


def _litert(path, threads):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = np.zeros(detail["shape"], detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    return interpreter.invoke


def _onnx_variants(fp32_path, size, out):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from pocketgan.export import ExportConfig
    from pocketgan.export.pipeline import calibration_images

    calibration = calibration_images(ExportConfig(size=size, calibration_count=8))
    pre = out / "bench.pre.onnx"
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)

    class Reader:
        def __init__(self):
            self.items = iter([{"image": calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.items, None)

    layouts = {
        "onnx int8 QDQ S8S8 per-channel": dict(
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8
        ),
        "onnx int8 QDQ U8S8 per-channel": dict(
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8
        ),
        "onnx int8 QDQ S8S8 per-channel convs": dict(
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],
        ),
        "onnx int8 QDQ U8S8 per-tensor": dict(
            quant_format=QuantFormat.QDQ, per_channel=False, activation_type=QuantType.QUInt8
        ),
        "onnx int8 QOperator U8S8 per-channel": dict(
            quant_format=QuantFormat.QOperator, per_channel=True, activation_type=QuantType.QUInt8
        ),
    }
    paths = {}
    for label, kwargs in layouts.items():
        path = out / (label.replace(" ", "_") + ".onnx")
        quantize_static(str(pre), str(path), Reader(), weight_type=QuantType.QInt8, **kwargs)
        paths[label] = path
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path)
    parser.add_argument("--name", default="student")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--layouts", action="store_true", help="also time extra ONNX int8 layouts")
    parser.add_argument("--extra", nargs="*", default=[], help="more .tflite/.onnx files to time")
    args = parser.parse_args()
    runners = {}
    for precision in ("fp32", "int8", "fp16", "w8"):
        for suffix, make in ((".onnx", _ort_session), (".tflite", _litert)):
            path = args.dist / f"{args.name}.{precision}{suffix}"
            if path.exists():
                runners[f"{suffix[1:]} {precision}"] = make(path, args.threads)
    if args.layouts:
        for label, path in _onnx_variants(args.dist / f"{args.name}.fp32.onnx", args.size, args.dist).items():
            runners[label] = _ort_session(path, args.threads)
    for extra in map(Path, args.extra):
        runners[extra.name] = (_ort_session if extra.suffix == ".onnx" else _litert)(extra, args.threads)
    times = {label: [] for label in runners}
    for run in runners.values():
        run()  # warm-up
    for _ in range(args.rounds):
        for label, run in runners.items():
            for _ in range(args.per_round):
                start = time.perf_counter()
                run()
                times[label].append((time.perf_counter() - start) * 1e3)
    medians = {label: statistics.median(values) for label, values in times.items()}
    for label, median in medians.items():
        family = "onnx" if label.startswith("onnx") or label.endswith(".onnx") else "tflite"
        base = medians.get(f"{family} fp32")
        ratio = f"  fp32/this {base / median:4.2f}x" if base else ""
        print(f"{label:40s} p50 {median:8.2f} ms{ratio}")


if __name__ == "__main__":
    main()
