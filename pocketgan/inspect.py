"""`pocketgan inspect`: parameters, MACs, layer histogram and exportability of a model or spec.

Example: pocketgan inspect vintage --size 256 --json
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from pocketgan.export import exportability, registered_exporters
from pocketgan.flops import MAC_METHOD, count_macs, count_params
from pocketgan.models.resolve import resolve
from pocketgan.runtime.base import format_of


def inspect_model(spec: str, size: int = 256, weights: str | None = None, **model_kwargs) -> dict[str, Any]:
    """A JSON-able description of `spec` at `size`x`size`."""
    described = _describe_artifact(spec, size)
    if described is not None:
        return described
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


def _describe_artifact(path: str, size: int) -> dict[str, Any] | None:
    """An artifact file whose exporter reads it back (Exporter.describe_artifact), else None."""
    fmt = format_of(path)
    exporter = registered_exporters().get(fmt) if fmt else None
    description = exporter.describe_artifact(Path(path)) if exporter else None
    if description is None:
        return None
    return {
        "model": path,
        "size": size,
        "params": "unknown: not counted in an artifact",
        "macs": "unknown: MACs are counted on torch modules only",
        **description,
        "exporters": {fmt: f"is {fmt}"},
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
    }


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
    a .pt2 ExportedProgram, an .onnx file, or an artifact its exporter reads back (an ExecuTorch .pte:
    what its XNNPACK delegate runs and what is left on portable CPU kernels).

    \b
    Examples:
      pocketgan inspect vintage --size 256
      pocketgan inspect student:patch-resnet --width 48 --json
      pocketgan inspect dist/student.int8.pte
    """
    kwargs = {"width": width} if width is not None else {}
    info = inspect_model(model, size=size, weights=weights, **kwargs)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    macs = info["macs"]
    click.echo(f"model      {info['model']}")
    params = info["params"]
    click.echo(f"params     {params:,}" if isinstance(params, int) else f"params     {params}")
    click.echo(
        f"MACs       {macs / 1e9:.3f} G at {size}x{size}" if isinstance(macs, int) else f"MACs       {macs}"
    )
    click.echo("layers     " + ", ".join(f"{k} x{v}" for k, v in info["ops"].items()))
    if info.get("summary"):
        click.echo(f"summary    {info['summary']}")
    for fmt, verdict in info["exporters"].items():
        click.echo(f"{fmt:<10} {verdict}")
