"""Every intermediate tensor of an artifact and of the torch model it came from, for `pocketgan explain`.

`torch_taps` runs the source model's exported FX graph (the program the converters start from) and keeps every
node's output with its module path; `onnx_taps` / `tflite_taps` / `coreml_taps` read the artifact's own
intermediate tensors (dequantized to float). All take and give NHWC float images in [-1, 1], batch 1 each.

Example: python -c "from pocketgan.export._taps import tflite_taps; import numpy as np;
                    print(len(tflite_taps('dist/student.int8.tflite', np.zeros((1, 256, 256, 3), np.float32))))"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Tap:
    """One tensor: its name in the graph it comes from, the op that made it and its values per image."""

    name: str
    op: str
    values: list[np.ndarray] = field(default_factory=list)
    module: str = ""  # torch: the innermost module path ("blocks.0.0"); artifacts: their scope text
    inputs: tuple[str, ...] = ()  # torch: the names of the nodes it was computed from
    users: tuple[str, ...] = ()  # torch: the names of the nodes that read it
    requantizes: str = ""  # artifacts: the tensor this one is a (re)quantized copy of, as its readers see it


def torch_taps(model, images: np.ndarray) -> dict[str, Tap]:
    """{FX node name: Tap} for every call in `model`'s exported graph, on NHWC `images` (N, H, W, 3).

    The graph is `torch.export` of the NHWC-wrapped model with in-place ops functionalized
    (`run_decompositions({})`), which names its nodes the way the dynamo ONNX exporter and coremltools name
    their values, so artifact tensors can be matched by name where the format keeps names. A model with a
    context input gets each image's context thumbnail there, as its artifact does (`torch_inputs`).
    """
    import torch

    from pocketgan.export.prepare import ChannelsLast

    wrapped = ChannelsLast(model).eval()
    program = torch.export.export(wrapped, torch_inputs(wrapped, images[0])).run_decompositions({})
    module = program.module()
    taps: dict[str, Tap] = {}
    for node in module.graph.nodes:
        if node.op == "call_function":
            stack = list((node.meta.get("nn_module_stack") or {}).values())
            path = stack[-1][0] if stack else ""
            taps[node.name] = Tap(
                node.name,
                getattr(node.target, "__name__", str(node.target)).split(".")[0],
                module=path.removeprefix("model").removeprefix("."),
                inputs=tuple(n.name for n in node.all_input_nodes),
                users=tuple(n.name for n in node.users),
            )

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            if node.name in taps and isinstance(result, torch.Tensor):
                taps[node.name].values.append(result.detach().float().numpy().copy())
            return result

    with torch.no_grad():
        for image in images:
            _Recorder(module).run(*torch_inputs(wrapped, image))
    return {name: tap for name, tap in taps.items() if len(tap.values) == len(images)}


def torch_inputs(wrapped, image: np.ndarray) -> tuple:
    """NHWC float `image` (H, W, 3) in [-1, 1] -> the ChannelsLast model's inputs: the image, and its
    context thumbnail (images.context_thumbnail, as the runtime makes it) where the model takes one."""
    import torch

    from pocketgan.images import context_thumbnail, to_float, to_uint8

    x = torch.from_numpy(np.ascontiguousarray(image[None], dtype=np.float32))
    if not wrapped.has_context:
        return (x,)
    return x, torch.from_numpy(to_float(context_thumbnail(to_uint8(image)))[None])


def _feeds(path: str | Path, images: np.ndarray, backend: str | None = None) -> list[dict[str, np.ndarray]]:
    """{input name: array} per NHWC `images` (N, H, W, 3) in [-1, 1], as the runtime feeds the artifact:
    the image and, for a two-input artifact, its context thumbnail (left unset, it reads as zeros and
    every tensor after the context looks broken)."""
    from pocketgan import runtime
    from pocketgan.images import to_uint8

    with runtime.load(path, backend=backend, threads=1) as session:
        names = [spec.name for spec in session.engine.inputs]
        return [dict(zip(names, session.native_inputs(to_uint8(image)), strict=True)) for image in images]


def onnx_taps(path: str | Path, images: np.ndarray) -> list[Tap]:
    """Every float tensor an ONNX artifact computes, exposed as extra graph outputs and run by onnxruntime.

    A tensor that reaches its consumers through QuantizeLinear -> DequantizeLinear is reported under its own
    name with the dequantized values: what the next op sees, so a quantization error shows at its source.
    """
    import onnx
    import onnxruntime as ort
    from onnx import shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    float_type = onnx.TensorProto.FLOAT
    typed = {v.name: v for v in [*graph.value_info, *graph.output]}
    producers = {out: node for node in graph.node for out in node.output}
    seen = {v.name for v in graph.output}
    wanted: dict[str, tuple[str, str]] = {}  # exposed tensor -> (reported name, op)
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for out in node.output:
            info = typed.get(out)
            if info is None or info.type.tensor_type.elem_type != float_type:
                continue
            wanted[out] = (out, node.op_type)
    for node in graph.node:  # X -> QuantizeLinear -> DequantizeLinear: report X with the dequantized values
        source = producers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if source is not None and source.op_type == "QuantizeLinear" and source.input[0] in wanted:
            original = source.input[0]
            wanted.pop(original, None)
            wanted[node.output[0]] = (original, producers[original].op_type if original in producers else "")
    for name in wanted:
        if name not in seen:
            graph.output.append(typed.get(name) or onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs() if o.name in wanted]
    taps = [Tap(wanted[name][0], wanted[name][1]) for name in names]
    for feed in _feeds(path, images):
        for tap, value in zip(taps, session.run(names, feed), strict=True):
            tap.values.append(np.asarray(value, np.float32))
    return taps


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []), np.float32)
    if values.dtype.kind == "f" or not scales.size:
        return values.astype(np.float32)
    zero_points = np.asarray(params.get("zero_points", [0] * scales.size), np.float32)
    if scales.size > 1:  # per-channel: along quantized_dimension
        shape = [1] * values.ndim
        shape[int(params.get("quantized_dimension", 0))] = -1
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    return (values.astype(np.float32) - zero_points) * scales


def tflite_taps(path: str | Path, images: np.ndarray) -> list[Tap]:
    """Every op output of a TFLite artifact (builtin kernels, no delegate, all tensors kept), dequantized.

    The inputs are what the runtime feeds (`_feeds`): quantized where the model takes integers.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    inputs = {d["name"]: d["index"] for d in interpreter.get_input_details()}
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
    taps = [
        Tap(
            details[i]["name"],
            op["op_name"],
            module=details[i]["name"],
            requantizes=details[op["inputs"][0]]["name"] if op["op_name"] == "QUANTIZE" else "",
        )
        for op in ops
        for i in op["outputs"]
        if i >= 0
    ]
    indices = [i for op in ops for i in op["outputs"] if i >= 0]
    for feed in _feeds(path, images):
        for name, array in feed.items():
            interpreter.set_tensor(inputs[name], array)
        interpreter.invoke()
        for tap, index in zip(taps, indices, strict=True):
            tap.values.append(_dequantize(interpreter.get_tensor(index), details[index]))
    return taps


def coreml_taps(path: str | Path, images: np.ndarray) -> list[Tap]:
    """Every op output of a Core ML ML Program, run op by op by our numpy reference interpreter."""
    from pocketgan.runtime.coreml_reference.interpreter import load_interpreter

    interpreter = load_interpreter(path)
    steps = [(step.type, name) for step in interpreter.steps for name, _ in step.outputs]
    taps = [Tap(name.removesuffix("_cast_fp16"), op) for op, name in steps]
    for feed in _feeds(path, images, backend="coreml-reference"):
        values = interpreter.trace(feed)
        for tap, (_, name) in zip(taps, steps, strict=True):
            value = values.get(name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                tap.values.append(value.astype(np.float32))
    return [tap for tap in taps if len(tap.values) == len(images)]
