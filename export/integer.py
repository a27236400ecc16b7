"""Which ops of an ONNX or TFLite artifact compute in float: what keeps it off a phone NPU.

NPU delegates (Hexagon, MediaTek APU, Edge TPU-class) take integer ops only; a float op falls back to the
CPU, with a transfer on each side. TFLite: an op is float when any tensor it reads or writes is float
(QUANTIZE/DEQUANTIZE included: with integer I/O there is none). ONNX QDQ: an op is integer when every float
tensor it reads comes from a DequantizeLinear or is a constant, and every float tensor it writes goes only
to QuantizeLinear (the node units QDQ execution providers take); the graph's own float input and output,
quantized and dequantized once, count as the boundary, not as float ops.

Example: python -c "from pocketgan.export.integer import float_ops; print(float_ops('dist/student.int8-full.tflite'))"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def float_ops(path: str | Path) -> dict[str, Any]:
    """{"op_count", "float_ops": [{"op", "name"}], "npu_ready", "verdict"} for an .onnx or .tflite file."""
    path = Path(path)
    if path.suffix == ".tflite":
        total, found = _tflite_float_ops(path)
    elif path.suffix == ".onnx":
        total, found = _onnx_float_ops(path)
    else:
        raise ValueError(f"{path.name}: float-op listing reads .onnx and .tflite files")
    ready = not found
    verdict = (
        "NPU-ready: every op is integer" if ready else f"not NPU-ready: {len(found)} of {total} ops in float"
    )
    return {"op_count": total, "float_ops": found, "npu_ready": ready, "verdict": verdict}


def _tflite_float_ops(path: Path) -> tuple[int, list[dict[str, str]]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    found = []
    for op in ops:
        tensors = [i for i in [*op["inputs"], *op["outputs"]] if i >= 0]
        if any(np.dtype(details[i]["dtype"]).kind == "f" for i in tensors):
            output = details[op["outputs"][0]]["name"] if len(op["outputs"]) else ""
            scope = output.split(";")[0].rsplit("/", 1)[-1]  # the innermost module of the scope path
            found.append({"op": op["op_name"], "name": scope[-100:]})
    return len(ops), found


def _onnx_float_ops(path: Path) -> tuple[int, list[dict[str, str]]]:
    import onnx

    graph = onnx.load(str(path)).graph
    found = onnx_float_nodes(graph)
    compute = [node for node in graph.node if node.op_type not in QDQ_OPS]
    return len(compute), [{"op": node.op_type, "name": node.name} for node in found]


def onnx_float_nodes(graph) -> list:
    """The nodes of an ONNX graph that read or write a float tensor outside a QDQ pair (module docstring)."""
    import onnx
    from onnx import helper, shape_inference

    inferred = shape_inference.infer_shapes(helper.make_model(graph)).graph
    floats = {
        v.name
        for v in [*inferred.value_info, *inferred.input, *inferred.output]
        if v.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    }
    constants = {init.name for init in graph.initializer}
    producers = {out: node.op_type for node in graph.node for out in node.output}
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    found = []
    for node in graph.node:
        if node.op_type in QDQ_OPS:
            continue
        reads_float = any(
            name in floats
            and name not in constants
            and producers.get(name) not in ("DequantizeLinear", "Constant")
            for name in node.input
            if name
        )
        writes_float = any(
            name in floats and any(op != "QuantizeLinear" for op in consumers.get(name, ["(graph output)"]))
            for name in node.output
        )
        if reads_float or writes_float:
            found.append(node)
    return found
