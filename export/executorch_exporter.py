"""ExecuTorch exporter: torch.export -> XNNPACK partitioner -> `.pte`, NHWC float I/O; fp32, fp16, int8 static.

The program is lowered with `to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])`: what
XNNPACK takes runs in its delegate, the rest on ExecuTorch's portable CPU kernels. The split is counted at
export (`delegation`, written into the manifest) and read back from a `.pte` by `describe_pte` (inspect).
int8 is PT2E static quantization with `XNNPACKQuantizer` (per-channel symmetric weights, int8 activations),
calibrated on the same images as the other formats; layers marked `float_only` stay in float, as in TFLite.
fp16 runs the model in half precision inside XNNPACK, with float32 image I/O (the casts run on portable
kernels). XNNPACK has no weight-only int8 (w8), and 6-bit palettes (p6) are a Core ML format.
The Python runtime that checks parity (executorch.runtime) links libtorch: see runtime/executorch.py.
A context model gets two inputs, image (dynamic H and W: torch.export Dims, which XNNPACK takes up to the
declared maximum) and context (256²); a .pte stores no input names, the manifest does. int8 of a context
model stays today's one-input program at the export size (the image is its own thumbnail): with the context
input, XNNPACK does not take the int8 convolutions — with a dynamic image size the partitioner leaves one to
the portable kernels, which have no per-channel dequantize ("Missing out variants"); at a static size
XNNPACK refuses the program at load ("Failed to create convolution node").

Example: pocketgan export pocketgan/zoo/vintage-mobile/student.pt --format executorch --precision fp32,int8
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

from pocketgan.errors import ModelLoadError
from pocketgan.export.base import Exporter, Prepared, library_missing, nhwc_io_entries, register_exporter
from pocketgan.manifest import EMBEDDED_MANIFEST_KEY
from pocketgan.status import OK, Status, unavailable

log = logging.getLogger(__name__)

INSTALL = 'pip install "pocketgan[executorch]"'
METHOD = "forward"


@register_exporter("executorch")
class ExecuTorchExporter(Exporter):
    suffix = ".pte"
    libraries = ("torch", "executorch", "torchao")
    precisions = ("fp32", "fp16", "int8")
    unsupported_precisions = {
        "w8": "XNNPACK has no weight-only int8 (its quantized convolutions take int8 activations too); use int8",
        "p6": "6-bit palettization is a Core ML weight format",
        "int8-full": "not built for ExecuTorch: XNNPACK is a CPU delegate (int8 keeps float I/O and the colour "
        "transform); export TFLite or ONNX int8-full for an NPU",
    }

    @classmethod
    def takes_context(cls, precision: str) -> bool:
        return precision != "int8"

    @classmethod
    def availability(cls) -> Status:
        missing = library_missing("executorch", "torchao")
        return unavailable(f"{INSTALL} (missing {missing})") if missing else OK

    @classmethod
    def describe_artifact(cls, path: Path) -> dict[str, Any]:
        """inspect's view of a .pte: XNNPACK node types ("delegate:") and portable kernels ("portable:")."""
        placement = describe_pte(path)
        calls = ", ".join(f"{name} x{n}" for name, n in placement["delegate_calls"].items()) or "none"
        return {
            "inputs": placement["inputs"],
            "outputs": placement["outputs"],
            "op_kinds": {
                "delegated": placement["delegated_nodes"],
                "portable": placement["portable_kernel_calls"],
            },
            "ops": {
                **{f"delegate:{op}": n for op, n in placement["delegated_ops"].items()},
                **{f"portable:{op}": n for op, n in placement["portable_ops"].items()},
            },
            "summary": (
                f"{placement['delegated_nodes']} nodes in delegate calls ({calls}); "
                f"{placement['portable_kernel_calls']} portable kernel calls"
            ),
            "placement": placement,
        }

    def export(self, prepared: Prepared, precision: str, path: Path) -> dict[str, Any]:
        from pocketgan.export.prepare import ChannelsLast  # imports torch

        model = ChannelsLast(prepared.model).eval()
        io = nhwc_io_entries(prepared, "image", "output")
        embedded = json.dumps({**prepared.metadata, **io}, default=str)
        if precision == "int8":
            graph = _quantize_int8(model, prepared)
            io["int8_method"] = (
                "PT2E static, XNNPACKQuantizer per-channel symmetric int8 weights and activations, "
                "float_only layers in float"
            )
        elif precision == "fp16":
            graph = _in_float16(model)
        else:
            graph = model
        program, delegation = _lower(graph, prepared, embedded)
        path.write_bytes(program.buffer)
        io["delegation"] = delegation
        return io


def _in_float16(model):
    """A copy of `model` computed in float16, with float32 image I/O (the two casts stay outside XNNPACK)."""
    import copy

    import torch

    class Float16(torch.nn.Module):
        def __init__(self, half: torch.nn.Module):
            super().__init__()
            self.model = half

        def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
            if context is None:
                return self.model(x.half()).float()
            return self.model(x.half(), context.half()).float()

    return Float16(copy.deepcopy(model).half()).eval()


def _quantize_int8(model, prepared: Prepared):
    """PT2E static int8 for XNNPACK, calibrated on `prepared`'s images (NHWC, one at a time)."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from pocketgan.export.prepare import calibration_inputs, sample_inputs  # imports torch

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    # XNNPACKQuantizer filters by module class (litert-torch's quantizer by its "module.QualName" string).
    for module_type in {type(m) for m in model.modules() if getattr(m, "float_only", False)}:
        quantizer.set_module_type(module_type, None)
    samples = sample_inputs(prepared.size, prepared.size, prepared.context)
    graph = prepare_pt2e(torch.export.export(model, samples).module(), quantizer)
    move_exported_model_to_eval(graph)
    with torch.no_grad():
        for item in calibration_inputs(prepared):
            graph(*(torch.from_numpy(a) for a in item))
    graph = convert_pt2e(graph)
    move_exported_model_to_eval(graph)
    return graph


def _lower(model, prepared: Prepared, embedded_manifest: str):
    """(ExecutorchProgramManager, delegation counts) of `model` lowered to XNNPACK + portable kernels."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    from pocketgan.export.prepare import dynamic_image_shapes, sample_inputs  # imports torch

    samples = sample_inputs(prepared.size, prepared.size, prepared.context)
    dynamic = dynamic_image_shapes() if prepared.context else None
    with torch.no_grad():
        exported = torch.export.export(model, samples, dynamic_shapes=dynamic)
    edge = to_edge_transform_and_lower(
        exported,
        partitioner=[XnnpackPartitioner()],
        constant_methods={EMBEDDED_MANIFEST_KEY: embedded_manifest},
    )
    info = get_delegation_info(edge.exported_program().graph_module)
    delegation = {
        "delegate": "XnnpackBackend",
        "subgraphs": info.num_delegated_subgraphs,
        "delegated_nodes": info.num_delegated_nodes,
        # getitem unpacks a delegate's outputs: bookkeeping, not an op that runs.
        "portable_nodes": sum(
            b.non_delegated for op, b in info.delegation_by_operator.items() if op != "getitem"
        ),
        "delegated_ops": _op_counts(info, delegated=True),
        "portable_ops": _op_counts(info, delegated=False),
    }
    return edge.to_executorch(), delegation


def _op_counts(info, delegated: bool) -> dict[str, int]:
    counts = {
        op: (b.delegated if delegated else b.non_delegated)
        for op, b in info.delegation_by_operator.items()
        if op != "getitem"
    }
    return dict(sorted(((op, n) for op, n in counts.items() if n), key=lambda kv: (-kv[1], kv[0])))


def describe_pte(path: str | Path) -> dict[str, Any]:
    """What runs where in a `.pte`: delegate calls (and the nodes inside XNNPACK's) vs portable kernel calls.

    Read from the file alone (the program flatbuffer and each XNNPACK payload), no loading or running.
    """
    from executorch.exir._serialize._program import deserialize_pte_binary

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such ExecuTorch program")
    try:
        program = deserialize_pte_binary(path.read_bytes()).program
    except Exception as exc:  # flatc or the schema reader fail with their own exception types
        raise ModelLoadError(f"{path}: not an ExecuTorch program ({type(exc).__name__}: {exc})") from None
    plan = next((p for p in program.execution_plan if p.name == METHOD), program.execution_plan[0])
    kernels: Counter[str] = Counter()
    delegate_calls: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            if hasattr(args, "op_index"):
                operator = plan.operators[args.op_index]
                kernels[operator.name + (f".{operator.overload}" if operator.overload else "")] += 1
            elif hasattr(args, "delegate_index"):
                delegate = plan.delegates[args.delegate_index]
                delegate_calls[delegate.id] += 1
                inside.update(_xnnpack_nodes(program, delegate))
    return {
        "method": plan.name,
        "inputs": [_tensor_entry(plan, index, "input") for index in plan.inputs],
        "outputs": [_tensor_entry(plan, index, "output") for index in plan.outputs],
        "delegate_calls": dict(delegate_calls),
        "delegated_nodes": sum(inside.values()),
        "delegated_ops": dict(inside.most_common()),
        "portable_kernel_calls": sum(kernels.values()),
        "portable_ops": dict(kernels.most_common()),
        "methods": sorted(p.name for p in program.execution_plan),
    }


# ExecuTorch's ScalarType codes (the program schema's enum) -> numpy dtype names, for the ones a program here has.
_SCALAR_TYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64"}


def _tensor_entry(plan, index: int, role: str) -> dict[str, Any]:
    """An input or output tensor of the plan as inspect lists them: name, shape, dtype."""
    tensor = plan.values[index].val
    return {
        "name": f"{role}_{index}",
        "shape": [int(n) for n in tensor.sizes],
        "dtype": _SCALAR_TYPES.get(int(tensor.scalar_type), f"scalar type {int(tensor.scalar_type)}"),
    }


def _xnnpack_nodes(program, delegate) -> Counter[str]:
    """XNNPACK node types inside one delegate payload (decoded with the schema ExecuTorch ships)."""
    if "xnnpack" not in delegate.id.lower():
        return Counter()
    return _xnnpack_node_types(_delegate_payload(program, delegate))


def _delegate_payload(program, delegate) -> bytes:
    """A delegate's processed bytes (deserialize_pte_binary moves segment data back inline)."""
    return bytes(program.backend_delegate_data[delegate.processed.index].data)


def _xnnpack_node_types(payload: bytes) -> Counter[str]:
    """{XNNPACK node type: count} in one XNNPACK delegate payload, decoded with the schema ExecuTorch ships."""
    import importlib.resources
    import tempfile

    import executorch.backends.xnnpack.serialization as schema_package
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
    from executorch.exir._serialize._flatbuffer import _flatc_decompile

    header = XNNHeader.from_bytes(payload[: XNNHeader.EXPECTED_LENGTH])
    flatbuffer = payload[header.flatbuffer_offset : header.flatbuffer_offset + header.flatbuffer_size]
    with tempfile.TemporaryDirectory() as folder:
        schema = Path(folder) / "schema.fbs"
        schema.write_bytes(importlib.resources.files(schema_package).joinpath("schema.fbs").read_bytes())
        binary = Path(folder) / "graph.bin"
        binary.write_bytes(flatbuffer)
        _flatc_decompile(folder, str(schema), str(binary), ["--raw-binary"])
        text = (Path(folder) / "graph.json").read_text()
    # Counted in flatc's JSON text: it writes unbounded clamps as a bare `inf`, which json cannot parse.
    return Counter(re.findall(r'"xnode_union_type": "XNN(\w+)"', text))
