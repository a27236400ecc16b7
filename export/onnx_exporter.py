"""ONNX exporter: dynamo export (opset 20), NHWC float I/O; fp16, int8 QDQ static, w8 weight-only.

A context model (a student) gets two inputs, "image" (1, H, W, 3) with dynamic H and W (torch.export
Dims, multiples of 4) and "context" (1, 256, 256, 3); int8 is calibrated at 256².

Example: pocketgan export runs/quick/best.pt --format onnx --precision fp32,int8 --out dist/
"""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.export.base import (
    EMBEDDED_IO,
    Exporter,
    Prepared,
    library_missing,
    nhwc_io_entries,
    register_exporter,
)
from pocketgan.manifest import EMBEDDED_MANIFEST_KEY
from pocketgan.status import OK, Status, unavailable

log = logging.getLogger(__name__)

OPSET = 20
INT8_SCHEME = "U8S8, per-channel 7-bit weights (reduce_range), MinMax calibration"
INPUT_NAME, OUTPUT_NAME = "image", "output"


@register_exporter("onnx")
class OnnxExporter(Exporter):
    suffix = ".onnx"
    libraries = ("torch", "onnx", "onnxscript", "onnxruntime", "onnxconverter-common")
    precisions = ("fp32", "fp16", "int8", "w8", "int8-full")
    unsupported_precisions = {"p6": "6-bit palettization is a Core ML weight format"}
    revision = 2  # 2: int8 weights in 7 bits (reduce_range)

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
        prepared.fp32_base(self.name, fp32_path, lambda base: _export_fp32(prepared, base))
        if precision == "fp32":
            model = onnx.load(str(fp32_path))
        elif precision == "fp16":
            from onnxconverter_common import float16

            model = float16.convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
        elif precision in ("int8", "int8-full"):
            model = _quantize_int8(fp32_path, prepared, every_op=precision == "int8-full")
        elif precision == "w8":
            model = weight_only_int8(onnx.load(str(fp32_path)))
        else:
            raise ValueError(f"onnx cannot export precision {precision!r}")
        fp32_path.unlink(missing_ok=True)
        io = nhwc_io_entries(prepared, INPUT_NAME, OUTPUT_NAME)
        if precision in ("int8", "int8-full"):
            ops = "Conv" if precision == "int8" else "every op"
            io["int8_method"] = f"quantize_static QDQ on {ops}, {INT8_SCHEME}"
        if precision == "w8":
            # Lets onnxruntime constant-fold the weight DequantizeLinear nodes at load: fp32 speed instead
            # of dequantizing every run.
            io["runtime_hints"] = {"onnxruntime_session_config": {"session.disable_quant_qdq": "1"}}
        _embed(model, {**prepared.metadata, **{key: io[key] for key in io if key in EMBEDDED_IO}})
        onnx.save_model(model, str(path))
        onnx.checker.check_model(str(path), full_check=True)
        return io


def _export_fp32(prepared: Prepared, path: Path) -> None:
    import torch

    from pocketgan.export.prepare import CONTEXT_NAME, ChannelsLast, dynamic_image_shapes, sample_inputs

    samples = sample_inputs(*prepared.trace_size, prepared.context)
    with torch.no_grad():
        program = torch.onnx.export(
            ChannelsLast(prepared.model).eval(),
            samples,
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME, CONTEXT_NAME][: len(samples)],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic_image_shapes() if prepared.context else None,
            external_data=False,
            verbose=False,
        )
    program.save(str(path), external_data=False)


class _CalibrationReader:
    """onnxruntime CalibrationDataReader over the calibration images, one image (and context) per call."""

    def __init__(
        self, items: list[tuple[np.ndarray, ...]]
    ):  # (image,) or (image, context), each (1, H, W, 3)
        from pocketgan.export.prepare import CONTEXT_NAME

        self._items = iter([dict(zip((INPUT_NAME, CONTEXT_NAME), item, strict=False)) for item in items])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def _quantize_int8(fp32_path: Path, prepared: Prepared, every_op: bool = False):
    """QDQ static: convolutions only, per-channel int8 weights, uint8 activations (U8S8), MinMax calibration.

    Weights use 7 bits (reduce_range): on x86 CPUs without VNNI (AVX2 only, e.g. AMD EPYC before Zen 4)
    onnxruntime multiplies U8S8 with an instruction whose 16-bit pair sums saturate, and the shipped student's
    int8 ONNX there scored 32.7 dB from torch (threshold 35) with 8-bit weights, 41.2 with 7 (README,
    "Measurements behind the defaults"). The file runs wherever the user runs it, so it is made safe for both.

    Convolutions only, because the elementwise ops (FiLM, the colour transform) are cheaper in float than as
    QDQ pairs: quantizing every op made the default student slower than fp32, this makes it faster
    (README, "Measurements behind the defaults"). `every_op`
    (int8-full) quantizes them anyway: what an NPU execution provider needs to take the whole graph.
    The nodes of `prepared.keep_float` layers are left in float.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from pocketgan.export.prepare import calibration_inputs  # imports torch

    pre = fp32_path.with_name(fp32_path.stem + ".pre.onnx")
    out = fp32_path.with_name(fp32_path.stem + ".int8.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(out),
        _CalibrationReader(calibration_inputs(prepared)),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=None if every_op else ["Conv"],
        nodes_to_exclude=_nodes_of_layers(
            onnx.load(str(fp32_path)), onnx.load(str(pre)), prepared.keep_float
        ),
        extra_options={"ForceQuantizeNoInputCheck": True} if every_op else None,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        reduce_range=True,
    )
    model = onnx.load(str(out))
    pre.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    if every_op:
        quantize_float_gaps(model, calibration_inputs(prepared)[:GAP_CALIBRATION_IMAGES])
    return model


GAP_CALIBRATION_IMAGES = 32


def quantize_float_gaps(model, images: list[tuple[np.ndarray, ...]]) -> None:
    """A QuantizeLinear -> DequantizeLinear pair (uint8, MinMax over `images`) after every float output of
    the ops onnxruntime's quantizer leaves in float (Tanh, DepthToSpace: not in its QDQ registry), so each
    op of the graph reads and writes quantized tensors. Repeats until no op is left in float.
    """
    from pocketgan.export.integer import onnx_float_nodes

    for _ in range(len(model.graph.node)):
        gaps = _float_outputs(model.graph, onnx_float_nodes(model.graph))
        if not gaps:
            return
        ranges = _ranges(model, gaps, images)
        for name in gaps:
            _insert_qdq(model.graph, name, *ranges[name])


def _float_outputs(graph, nodes) -> list[str]:
    """Outputs of `nodes` read by anything but a QuantizeLinear (graph outputs excluded)."""
    readers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.op_type)
    return [
        name
        for node in nodes
        for name in node.output
        if any(op != "QuantizeLinear" for op in readers.get(name, ["QuantizeLinear"]))
    ]


def _ranges(model, names: list[str], images: list[tuple[np.ndarray, ...]]) -> dict[str, tuple[float, float]]:
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in names:
        probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = [dict(zip((i.name for i in session.get_inputs()), item, strict=True)) for item in images]
    values = [session.run(names, feed) for feed in feeds]
    return {
        name: (min(float(v[i].min()) for v in values), max(float(v[i].max()) for v in values))
        for i, name in enumerate(names)
    }


def _insert_qdq(graph, name: str, low: float, high: float) -> None:
    """`name` -> QuantizeLinear -> DequantizeLinear (uint8 over [low, high] with 0 inside); readers of `name`
    other than QuantizeLinear read the dequantized tensor."""
    from onnx import helper, numpy_helper

    low, high = min(low, 0.0), max(high, 0.0)
    scale = max(high - low, 1e-8) / 255.0
    zero_point = np.uint8(np.clip(np.rint(-low / scale), 0, 255))
    scale_name, zero_name = f"{name}_gap_scale", f"{name}_gap_zero_point"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(scale, np.float32), scale_name),
            numpy_helper.from_array(np.array(zero_point, np.uint8), zero_name),
        ]
    )
    quantized, dequantized = f"{name}_gap_quantized", f"{name}_gap_dequantized"
    for node in graph.node:
        if node.op_type != "QuantizeLinear":
            node.input[:] = [dequantized if i == name else i for i in node.input]
    pair = [
        helper.make_node("QuantizeLinear", [name, scale_name, zero_name], [quantized], name=f"{name}_gap_q"),
        helper.make_node(
            "DequantizeLinear", [quantized, scale_name, zero_name], [dequantized], name=f"{name}_gap_dq"
        ),
    ]
    position = next(i for i, node in enumerate(graph.node) if name in node.output) + 1
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes[:position] + pair + nodes[position:])


def _nodes_of_layers(exported, preprocessed, layers: tuple[str, ...]) -> list[str]:
    """Names of `preprocessed`'s nodes that belong to the modules `layers` (of the wrapped student).

    The exporter records each node's module path (`pkg.torch.onnx.name_scopes`); quant_pre_process drops
    that metadata and fuses some nodes, so nodes are found again by output tensor or by name prefix.
    """
    if not layers:
        return []
    scopes = tuple(f"model.{layer}" for layer in layers)
    names, outputs = set(), set()
    for node in exported.graph.node:
        metadata = {entry.key: entry.value for entry in node.metadata_props}
        path = ast.literal_eval(metadata.get("pkg.torch.onnx.name_scopes", "[]"))  # a Python list repr
        if any(p == s or p.startswith(s + ".") for p in path for s in scopes):
            names.add(node.name)
            outputs.update(node.output)
    return [
        node.name
        for node in preprocessed.graph.node
        if node.name.split("/")[0] in names or outputs.intersection(node.output)
    ]


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
