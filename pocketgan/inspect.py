"""`pocketgan inspect`: parameters, MACs, layer histogram and exportability of a model or spec.

Example: pocketgan inspect vintage --size 256 --json
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from pocketgan.export import exportability
from pocketgan.flops import MAC_METHOD, count_macs, count_params
from pocketgan.models.resolve import resolve
from pocketgan.runtime.base import format_of


def inspect_model(spec: str, size: int = 256, weights: str | None = None, **model_kwargs) -> dict[str, Any]:
    """A JSON-able description of `spec` at `size`x`size`."""
    if Path(spec).suffix == ".tflite":
        return _inspect_tflite(spec, size)
    resolved = resolve(spec, weights, **model_kwargs)
    if resolved.is_black_box:
        return _inspect_onnx(spec, size)
    model = resolved.module
    layers = Counter(type(m).__name__ for m in model.modules() if not list(m.children()))
    return {
        "model": spec,
        "size": size,
        "params": count_params(model),
        "macs": count_macs(model, size),
        "mac_method": MAC_METHOD,
        "ops": dict(sorted(layers.items(), key=lambda kv: -kv[1])),
        "exporters": exportability(model, size),
    }


def _inspect_onnx(path: str, size: int) -> dict[str, Any]:
    import onnx
    import onnx.numpy_helper

    model = onnx.load(path)
    params = sum(int(onnx.numpy_helper.to_array(t).size) for t in model.graph.initializer)
    ops = Counter(node.op_type for node in model.graph.node)
    return {
        "model": path,
        "size": size,
        "params": params,
        "macs": "unknown: MACs are counted on torch modules only",
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        "exporters": {format_of(path): f"is {format_of(path)}"},
        "npu": _npu(path),
    }


def _inspect_tflite(path: str, size: int) -> dict[str, Any]:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils

    ops = Counter(op["op_name"] for op in Interpreter(model_path=path)._get_ops_details())
    model = flatbuffer_utils.read_model(path)
    constants = [
        t for graph in model.subgraphs for t in graph.tensors if model.buffers[t.buffer].data is not None
    ]
    return {
        "model": path,
        "size": size,
        "params": sum(int(np.prod(t.shape)) for t in constants),
        "macs": "unknown: MACs are counted on torch modules only",
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        "exporters": {"tflite": "is tflite"},
        "npu": _npu(path),
    }


def _npu(path: str) -> dict[str, Any]:
    """The ops left in float (what keeps the model off a phone NPU), from export/integer.py."""
    from pocketgan.export.integer import float_ops

    return float_ops(path)


@click.command("inspect")
@click.argument("model")
@click.option("--size", default=256, show_default=True, help="Square input size for the MAC count.")
@click.option("--width", type=int, default=None, help="Width multiplier, for registered student names.")
@click.option(
    "--weights", type=click.Path(exists=True, dir_okay=False), help="State dict for a factory spec."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def inspect_command(model: str, size: int, width: int | None, weights: str | None, as_json: bool) -> None:
    """Parameters, MACs, layer histogram and per-format exportability of MODEL.

    MODEL is a spec (vintage, student:patch-resnet, pkg.module:factory), a .pt checkpoint,
    a .pt2 ExportedProgram, or an .onnx / .tflite artifact: for those it also lists every op left in
    float and says "not NPU-ready" when there is one.

    \b
    Examples:
      pocketgan inspect vintage --size 256
      pocketgan inspect student:patch-resnet --width 48 --json
      pocketgan inspect dist/student.int8-full.tflite
    """
    kwargs = {"width": width} if width is not None else {}
    info = inspect_model(model, size=size, weights=weights, **kwargs)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    macs = info["macs"]
    click.echo(f"model      {info['model']}")
    click.echo(f"params     {info['params']:,}")
    click.echo(
        f"MACs       {macs / 1e9:.3f} G at {size}x{size}" if isinstance(macs, int) else f"MACs       {macs}"
    )
    click.echo("layers     " + ", ".join(f"{k} x{v}" for k, v in info["ops"].items()))
    for fmt, verdict in info["exporters"].items():
        click.echo(f"{fmt:<10} {verdict}")
    if "npu" in info:
        click.echo(f"npu        {info['npu']['verdict']}")
        for op in info["npu"]["float_ops"]:
            click.echo(f"  float    {op['op']:<16} {op['name']}")
