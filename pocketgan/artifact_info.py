"""What a mobile engineer asks of an exported artifact, read from the file and its manifest (torch-free).

Inputs and outputs (name, shape, dtype, layout, range, colour, quantization), precision, size, op histogram
split into float and quantized ops, MACs (the manifest's count from the torch model it came from, else
counted on the graph: convolutions and matrix products, the ops that FlopCounterMode counts) and the
manifest's parity. Reads ONNX with `onnx`, TFLite with LiteRT's flatbuffer schema, Core ML ML Programs
with coremltools' spec (without coremltools: what the manifest says).

Example: python -c "from pocketgan.artifact_info import describe_artifact; print(describe_artifact('dist/student.int8.tflite'))"
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from pocketgan.errors import ModelLoadError
from pocketgan.manifest import read_manifest, size_bytes
from pocketgan.runtime import backends  # noqa: F401  (registers the backends that format_of asks)
from pocketgan.runtime.base import format_of

GRAPH_MAC_METHOD = "counted on the graph: Conv/ConvTranspose/MatMul/Gemm multiply-accumulates, batch 1"
ONNX_QUANTIZED = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "ConvInteger",
    "MatMulInteger",
}
TFLITE_QUANTIZED_TYPES = {"INT8", "UINT8", "INT16", "INT4"}
COREML_QUANTIZED = {"quantize", "dequantize"}
TENSOR_KEYS = ("name", "shape", "dtype", "layout", "range", "color")


def describe_artifact(path: str | Path) -> dict[str, Any]:
    """A JSON-able description of an artifact (.onnx, .tflite, .mlpackage/.mlmodel: READERS; any other
    format a backend opens: what its exporter's `describe_artifact` reads, e.g. an ExecuTorch .pte)."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model file")
    manifest = read_manifest(path) or {}
    fmt = format_of(path)
    if fmt is None:
        raise ModelLoadError(f"{path}: not an artifact format any runtime backend opens")
    graph = READERS[fmt](path) if fmt in READERS else _read_by_exporter(path, fmt)
    source = manifest.get("source") or {}
    macs = source.get("macs") or graph.get("macs")
    return {
        "model": str(path),
        "format": manifest.get("format") or fmt,
        "precision": manifest.get("precision") or graph["precision"],
        "size_bytes": size_bytes(path),
        "inputs": _tensors(graph["inputs"], manifest.get("input")),
        "outputs": _tensors(graph["outputs"], manifest.get("output")),
        "params": graph.get("params"),
        "macs": macs,
        "mac_method": source.get("mac_method") if source.get("macs") else graph.get("mac_method"),
        "ops": graph["ops"],
        "op_kinds": graph["op_kinds"],
        "parity": manifest.get("parity") or "unknown: no manifest",
        "grain": _grain_summary(manifest.get("grain")),
        "source": {k: source.get(k) for k in ("kind", "student", "checkpoint", "checkpoint_sha256")}
        if source
        else None,
        **graph.get("extra", {}),
    }


def _grain_summary(grain: dict[str, Any] | None) -> str:
    """One line on the teacher's grain `Session.run` adds (runtime/grain.py), or that there is none."""
    if not grain:
        return "none (Session.run adds no grain)"
    fitted = grain.get("fitted_on") or {}
    where = (
        f", fitted on {len(fitted['photos'])} {fitted.get('split', '')} photos" if "photos" in fitted else ""
    )
    return (
        f"std {min(grain['std_levels']):.1f}-{max(grain['std_levels']):.1f} levels by luminance{where}; "
        "added to photos by Session.run (run --grain 0: none)"
    )


def _tensors(found: list[dict[str, Any]], declared: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The graph's tensors, with layout/range/colour from the manifest (for the first, the image tensor)."""
    tensors = []
    for index, tensor in enumerate(found):
        entry = dict(tensor)
        if index == 0 and declared:
            entry.update(
                {k: declared[k] for k in TENSOR_KEYS if k in declared and k not in ("name", "shape")}
            )
        entry.setdefault("layout", _layout(entry["shape"]))
        entry.setdefault("range", "unknown: no manifest")
        tensors.append(entry)
    return tensors


def _layout(shape: list) -> str | None:
    if len(shape) != 4:
        return None
    return "NCHW" if shape[1] == 3 else "NHWC" if shape[-1] == 3 else None


def _histogram(ops: list[str], quantized: set[str] | None = None) -> dict[str, int]:
    return dict(sorted(Counter(ops).items(), key=lambda kv: (-kv[1], kv[0])))


def _kinds(quantized_flags: list[bool]) -> dict[str, int]:
    return {"float": quantized_flags.count(False), "quantized": quantized_flags.count(True)}


def _precision_guess(kinds: dict[str, int], float_types: set[str]) -> str:
    if kinds["quantized"]:
        return "int8" if "FLOAT16" not in float_types else "mixed"
    return "fp16" if "FLOAT16" in float_types else "fp32"


# -- ONNX ------------------------------------------------------------------------------------------------------
def _read_onnx(path: Path) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:  # an unknown custom op: MACs are then counted where shapes are known
        pass
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    for value in [*graph.value_info, *graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]

    def is_quantized(op: str) -> bool:
        return op in ONNX_QUANTIZED or op.startswith("QLinear")

    ops = [node.op_type for node in graph.node]
    kinds = _kinds([is_quantized(op) for op in ops])
    float_types = {onnx.TensorProto.DataType.Name(t.data_type) for t in graph.initializer}
    return {
        "inputs": [_onnx_tensor(v) for v in graph.input if v.name not in initializers],
        "outputs": [_onnx_tensor(v) for v in graph.output],
        "params": sum(int(numpy_helper.to_array(t).size) for t in graph.initializer),
        "ops": _histogram(ops),
        "op_kinds": kinds,
        "precision": _precision_guess(kinds, float_types),
        **_graph_macs(sum(_onnx_node_macs(node, shapes) for node in graph.node)),
    }


def _onnx_tensor(value) -> dict[str, Any]:
    import onnx

    tensor_type = value.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
    return {"name": value.name, "shape": shape, "dtype": dtype}


def _onnx_node_macs(node, shapes: dict[str, list[int]]) -> int:
    """Multiply-accumulates of one Conv / ConvTranspose / MatMul / Gemm node (0 when shapes are unknown)."""
    if node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm") or len(node.input) < 2:
        return 0
    weight, output = shapes.get(node.input[1]), shapes.get(node.output[0])
    source = shapes.get(node.input[0])
    if not weight or not output or any(d < 0 for d in weight + output):
        return 0
    if node.op_type == "Conv":  # weight (Cout, Cin/groups, kH, kW)
        return math.prod(output) * math.prod(weight[1:])
    if node.op_type == "ConvTranspose":  # weight (Cin, Cout/groups, kH, kW): every input value is spread
        if not source or any(d < 0 for d in source):
            return 0
        return math.prod(source) * math.prod(weight[1:])
    return math.prod(output) * weight[0 if node.op_type == "MatMul" else -1]


def _graph_macs(total: int) -> dict[str, Any]:
    return {"macs": total, "mac_method": GRAPH_MAC_METHOD} if total else {}


# -- TFLite ----------------------------------------------------------------------------------------------------
def _read_tflite(path: Path) -> dict[str, Any]:
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes()
    if data[4:8] != b"TFL3":
        raise ModelLoadError(f"{path}: not a TFLite model (no TFL3 identifier in its header)")
    model = schema.Model.GetRootAs(data, 0)
    subgraph = model.Subgraphs(0)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}

    def tensor(index: int) -> dict[str, Any]:
        t = subgraph.Tensors(index)
        signature = t.ShapeSignatureAsNumpy() if t.ShapeSignatureLength() else t.ShapeAsNumpy()
        entry = {
            "name": t.Name().decode(),
            "shape": [int(d) for d in signature],
            "type": type_names[t.Type()],
        }
        quantization = t.Quantization()
        if quantization is not None and quantization.ScaleLength() == 1:
            entry["quantization"] = [float(quantization.Scale(0)), int(quantization.ZeroPoint(0))]
        return entry

    ops, flags, macs = [], [], 0
    for i in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(i)
        code = model.OperatorCodes(operator.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = [tensor(j) for j in operator.InputsAsNumpy() if j >= 0]
        outputs = [tensor(j) for j in operator.OutputsAsNumpy() if j >= 0]
        ops.append(name)
        flags.append(any(t["type"] in TFLITE_QUANTIZED_TYPES for t in inputs + outputs))
        macs += _tflite_op_macs(name, inputs, outputs)
    constants = [subgraph.Tensors(j) for j in range(subgraph.TensorsLength())]
    constants = [t for t in constants if t.Buffer() > 0 and model.Buffers(t.Buffer()).DataLength()]
    float_types = {type_names[t.Type()] for t in constants}
    kinds = _kinds(flags)
    return {
        "inputs": [_tflite_io(tensor(j)) for j in subgraph.InputsAsNumpy()],
        "params": sum(int(math.prod(t.ShapeAsNumpy())) if t.ShapeLength() else 1 for t in constants),
        "outputs": [_tflite_io(tensor(j)) for j in subgraph.OutputsAsNumpy()],
        "ops": _histogram(ops),
        "op_kinds": kinds,
        "precision": _precision_guess(kinds, float_types),
        **_graph_macs(macs),
    }


def _tflite_io(entry: dict[str, Any]) -> dict[str, Any]:
    found = {"name": entry["name"], "shape": entry["shape"], "dtype": entry["type"].lower()}
    if "quantization" in entry and entry["type"] in TFLITE_QUANTIZED_TYPES:
        found["quantization"] = entry["quantization"]
    return found


def _tflite_op_macs(name: str, inputs: list[dict], outputs: list[dict]) -> int:
    """MACs of one convolution or fully connected op from its tensors' shapes (0 for other ops)."""
    if not outputs or any(d < 0 for d in outputs[0]["shape"]):
        return 0
    out = outputs[0]["shape"]
    if name == "CONV_2D" and len(inputs) > 1:  # filter (Cout, kH, kW, Cin)
        return math.prod(out) * math.prod(inputs[1]["shape"][1:])
    if name == "DEPTHWISE_CONV_2D" and len(inputs) > 1:  # filter (1, kH, kW, Cout)
        return math.prod(out) * math.prod(inputs[1]["shape"][1:3])
    if name == "TRANSPOSE_CONV" and len(inputs) > 2:  # (output_shape, filter (Cout, kH, kW, Cin), input)
        return math.prod(inputs[2]["shape"]) * math.prod(inputs[1]["shape"][:3])
    if name in ("FULLY_CONNECTED", "BATCH_MATMUL") and len(inputs) > 1:
        return math.prod(out) * inputs[1]["shape"][-1 if name == "FULLY_CONNECTED" else -2]
    return 0


# -- Core ML ---------------------------------------------------------------------------------------------------
def _read_coreml(path: Path) -> dict[str, Any]:
    try:
        from pocketgan.runtime.coreml_reference import load_program
    except ImportError as exc:
        why = f"unknown: reading a Core ML program needs coremltools ({exc.name} missing)"
        return {"inputs": [], "outputs": [], "ops": why, "op_kinds": why, "precision": "unknown"}
    program, _ = load_program(path)
    ops = [op.type for op in program.operations if op.type != "const"]
    flags = [op.startswith("constexpr_") or op in COREML_QUANTIZED for op in ops]
    float_types = {vtype.dtype for op in program.operations for _, vtype in op.outputs}
    kinds = _kinds(flags)
    inputs = [
        {"name": name, "shape": list(vtype.shape), "dtype": vtype.dtype.lower()}
        for name, vtype in program.inputs.items()
    ]
    for entry in inputs:
        image = program.image_inputs.get(entry["name"])
        if image is not None:
            entry.update(dtype="image", color=image.color)
    for name, image in program.image_inputs.items():
        if name in program.inputs:
            continue
        inputs.append(
            {"name": name, "shape": [1, image.height, image.width, 3], "dtype": "image", "color": image.color}
        )
    outputs = [
        {
            "name": name,
            "shape": list(program.output_types[name].shape),
            "dtype": program.output_types[name].dtype.lower(),
        }
        for name in program.outputs
    ]
    return {
        "inputs": inputs,
        "outputs": outputs,
        "ops": _histogram(ops),
        "op_kinds": kinds,
        "precision": _precision_guess(kinds, float_types),
    }


def _read_by_exporter(path: Path, fmt: str) -> dict[str, Any]:
    """A format without a reader here: its exporter reads the file (Exporter.describe_artifact)."""
    from pocketgan.export import registered_exporters

    exporter = registered_exporters().get(fmt)
    description = exporter.describe_artifact(path) if exporter else None
    if description is None:
        raise ModelLoadError(f"{path}: no reader for {fmt} artifacts (its exporter describes none)")
    unknown = f"unknown: the {fmt} exporter does not say"
    return {
        "precision": unknown,
        "inputs": description.get("inputs", []),
        "outputs": description.get("outputs", []),
        "ops": description["ops"],
        "op_kinds": description.get("op_kinds", unknown),
        "extra": {k: v for k, v in description.items() if k not in ("inputs", "outputs", "ops", "op_kinds")},
    }


# Format (as the runtime backends name it, runtime.base.format_of) -> its reader.
READERS = {"onnx": _read_onnx, "tflite": _read_tflite, "coreml": _read_coreml}


def is_artifact(path: str | Path) -> bool:
    """Whether `path` names an artifact format a runtime backend opens (by suffix, as the backends declare)."""
    return format_of(path) is not None
