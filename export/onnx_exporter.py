"""ONNX exporter: dynamo export (opset 20), NHWC float I/O; fp16, int8 QDQ static, w8 weight-only.

Example: pocketgan export runs/quick/best.pt --format onnx --precision fp32,int8 --out dist/
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.export.base import Exporter, Prepared, library_missing, register_exporter
from pocketgan.manifest import EMBEDDED_MANIFEST_KEY
from pocketgan.status import OK, Status, unavailable

log = logging.getLogger(__name__)

OPSET = 20
INPUT_NAME, OUTPUT_NAME = "image", "output"


@register_exporter("onnx")
class OnnxExporter(Exporter):
    suffix = ".onnx"
    libraries = ("torch", "onnx", "onnxscript", "onnxruntime", "onnxconverter-common")
    precisions = ("fp32", "fp16", "int8", "w8")
    unsupported_precisions = {"p6": "6-bit palettization is a Core ML weight format"}

    @classmethod
    def availability(cls) -> Status:
        missing = library_missing("onnx", "onnxscript", "onnxruntime", "onnxconverter_common")
        if missing:
            return unavailable(
                f"pip install onnx onnxscript onnxruntime onnxconverter-common (missing {missing})"
            )
        return OK

    def export(self, prepared: Prepared, precision: str, path: Path) -> dict[str, Any]:
        import onnx

        fp32_path = path.with_name(path.stem + ".fp32-base.onnx")
        _export_fp32(prepared, fp32_path)
        if precision == "fp32":
            model = onnx.load(str(fp32_path))
        elif precision == "fp16":
            from onnxconverter_common import float16

            model = float16.convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
        elif precision == "int8":
            model = _quantize_int8(fp32_path, prepared)
        elif precision == "w8":
            model = weight_only_int8(onnx.load(str(fp32_path)))
        else:
            raise ValueError(f"onnx cannot export precision {precision!r}")
        fp32_path.unlink(missing_ok=True)
        shape = [1, prepared.size, prepared.size, 3]
        tensor = {"shape": shape, "layout": "NHWC", "dtype": "float32", "range": [-1, 1], "color": "RGB"}
        io = {"input": {"name": INPUT_NAME, **tensor}, "output": {"name": OUTPUT_NAME, **tensor}}
        if precision == "int8":
            io["int8_method"] = "quantize_static QDQ on Conv, U8S8, per-channel weights, MinMax calibration"
        if precision == "w8":
            # Lets onnxruntime constant-fold the weight DequantizeLinear nodes at load: fp32 speed instead
            # of dequantizing every run.
            io["runtime_hints"] = {"onnxruntime_session_config": {"session.disable_quant_qdq": "1"}}
        _embed(model, {**prepared.metadata, "input": io["input"], "output": io["output"]})
        onnx.save_model(model, str(path))
        onnx.checker.check_model(str(path), full_check=True)
        return io


def _export_fp32(prepared: Prepared, path: Path) -> None:
    import torch

    from pocketgan.export.prepare import ChannelsLast  # imports torch

    x = torch.zeros(1, prepared.size, prepared.size, 3)
    with torch.no_grad():
        program = torch.onnx.export(
            ChannelsLast(prepared.model).eval(),
            (x,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            external_data=False,
            verbose=False,
        )
    program.save(str(path), external_data=False)


class _CalibrationReader:
    """onnxruntime CalibrationDataReader over the calibration images, one image per call."""

    def __init__(self, batches: np.ndarray):  # (N, H, W, 3) -> one (1, H, W, 3) item per call
        self._items = iter([{INPUT_NAME: batches[i : i + 1]} for i in range(len(batches))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def _quantize_int8(fp32_path: Path, prepared: Prepared):
    """QDQ static: convolutions only, per-channel int8 weights, uint8 activations (U8S8), MinMax calibration.

    Convolutions only, because the elementwise ops (FiLM, the colour transform) are cheaper in float than as
    QDQ pairs: quantizing every op made the default student slower than fp32, this makes it faster
    (README, "Measurements behind the defaults").
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from pocketgan.export.prepare import nhwc_calibration  # imports torch

    pre = fp32_path.with_name(fp32_path.stem + ".pre.onnx")
    out = fp32_path.with_name(fp32_path.stem + ".int8.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(out),
        _CalibrationReader(nhwc_calibration(prepared)),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    model = onnx.load(str(out))
    pre.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    return model


def weight_only_int8(model):
    """Conv/Gemm/MatMul weights stored as per-output-channel symmetric int8 + DequantizeLinear.

    Activations stay float: the file is ~4x smaller and numerics near fp32. (onnxruntime's
    quantize_dynamic also quantizes activations at run time and was ~9x slower on conv nets, FACTS.md.)
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    replaced: dict[str, str] = {}
    new_nodes = []
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        name = node.input[1]
        if name not in initializers or name in replaced:
            continue
        weight = numpy_helper.to_array(initializers[name]).astype(np.float32)
        if weight.ndim < 2 or weight.size < 64:
            continue
        axis = 1 if node.op_type == "ConvTranspose" else 0
        if node.op_type in ("MatMul", "Gemm"):
            axis = weight.ndim - 1 if node.op_type == "MatMul" else 0
        reduce_axes = tuple(a for a in range(weight.ndim) if a != axis)
        scale = np.maximum(np.abs(weight).max(axis=reduce_axes), 1e-12) / 127.0
        shape = [1] * weight.ndim
        shape[axis] = -1
        quantized = np.clip(np.rint(weight / scale.reshape(shape)), -127, 127).astype(np.int8)
        q_name, s_name, z_name, dq_name = (
            f"{name}_w8",
            f"{name}_w8_scale",
            f"{name}_w8_zero",
            f"{name}_w8_dq",
        )
        graph.initializer.extend(
            [
                numpy_helper.from_array(quantized, q_name),
                numpy_helper.from_array(scale.astype(np.float32), s_name),
                numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), z_name),
            ]
        )
        new_nodes.append(helper.make_node("DequantizeLinear", [q_name, s_name, z_name], [dq_name], axis=axis))
        replaced[name] = dq_name
    for node in graph.node:
        for i, name in enumerate(node.input):
            if i >= 1 and name in replaced:
                node.input[i] = replaced[name]
    kept = [init for init in graph.initializer if init.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = new_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _embed(model, metadata: dict[str, Any]) -> None:
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key = EMBEDDED_MANIFEST_KEY
    entry.value = json.dumps(metadata, default=str)
