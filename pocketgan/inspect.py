"""`pocketgan inspect`: what a model, checkpoint or exported artifact is.

For a model or checkpoint: parameters, MACs, layer histogram and exportability. For an artifact (.onnx,
.tflite, .mlpackage, .mlmodel): inputs/outputs, precision, size, ops (float vs quantized), MACs and parity
(pocketgan.artifact_info).

Example: pocketgan inspect vintage --size 256 --json -
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click

from pocketgan import console
from pocketgan.artifact_info import describe_artifact, is_artifact
from pocketgan.artifacts import (
    DEFAULT_FORMAT,
    DEFAULT_PRECISION,
    checkpoint_of,
    export_command,
    torch_installed,
)
from pocketgan.errors import UsageError


def inspect_model(spec: str, size: int = 256, weights: str | None = None, **model_kwargs) -> dict[str, Any]:
    """A JSON-able description of `spec` at `size`x`size` (an artifact: pocketgan.artifact_info)."""
    if is_artifact(spec):
        return _with_npu(describe_artifact(spec))
    name, checkpoint = spec, checkpoint_of(spec)
    if checkpoint is not None:
        _need_torch(spec, checkpoint)
        spec = str(checkpoint)
    from pocketgan.export import exportability
    from pocketgan.flops import MAC_METHOD, count_macs, count_params  # imports torch
    from pocketgan.models.resolve import resolve  # imports torch

    resolved = resolve(spec, weights, **model_kwargs)
    if resolved.is_black_box:
        return _with_npu(describe_artifact(spec))
    model = resolved.module
    layers = Counter(type(m).__name__ for m in model.modules() if not list(m.children()))
    return {
        "model": name,
        "size": size,
        "params": count_params(model),
        "macs": count_macs(model, size),
        "mac_method": MAC_METHOD,
        "ops": dict(sorted(layers.items(), key=lambda kv: -kv[1])),
        "exporters": exportability(model, size),
    }


def _need_torch(spec: str, checkpoint: Path) -> None:
    """A checkpoint is inspected in torch; without it, say how to get an artifact to inspect instead."""
    if not torch_installed():
        raise UsageError(
            f"{spec} is a student checkpoint and inspecting it needs torch (pip install 'pocketgan[full]'); "
            f"or export it where torch is installed and inspect the artifact: "
            f"{export_command(checkpoint, DEFAULT_FORMAT, DEFAULT_PRECISION)}"
        )


def _with_npu(info: dict[str, Any]) -> dict[str, Any]:
    """An ONNX or TFLite description gains "npu": the ops left in float (pocketgan.export.integer)."""
    if info["format"] in ("onnx", "tflite"):
        from pocketgan.export.integer import float_ops

        info["npu"] = float_ops(info["model"])
    return info


@click.command("inspect")
@click.argument("model")
@click.option("--size", default=256, show_default=True, help="Square input size for the MAC count.")
@click.option("--width", type=int, default=None, help="Width multiplier, for registered student names.")
@click.option(
    "--weights", type=click.Path(exists=True, dir_okay=False), help="State dict for a factory spec."
)
@console.json_option("the description")
def inspect_command(
    model: str, size: int, width: int | None, weights: str | None, json_target: str | None
) -> None:
    """What MODEL is: for a model, parameters, MACs, layers and exportability; for an artifact, its
    inputs/outputs, precision, size, ops (float vs quantized), MACs and parity.

    MODEL is a spec (vintage, student:patch-resnet, pkg.module:factory), a zoo name (vintage-mobile), a .pt
    checkpoint, a .pt2 ExportedProgram, or an artifact (.onnx, .tflite, .mlpackage, .mlmodel; an ExecuTorch
    .pte: what its XNNPACK delegate runs and what is left on portable CPU kernels). For .onnx and .tflite it
    also lists every op left in float and says "not NPU-ready" when there is one.

    \b
    Examples:
      pocketgan inspect vintage --size 256
      pocketgan inspect student:patch-resnet --width 48 --json -
      pocketgan inspect dist/student.int8.tflite --json - | jq .inputs
      pocketgan inspect dist/student.int8-full.tflite
      pocketgan inspect dist/student.int8.pte
    """
    kwargs = {"width": width} if width is not None else {}
    info = inspect_model(model, size=size, weights=weights, **kwargs)
    if json_target:
        console.emit_json(json_target, info)
        if json_target == "-":
            return
    if "inputs" in info:
        _print_artifact(info)
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


def _tensor_line(tensor: dict[str, Any]) -> str:
    quantization = f" q{tensor['quantization']}" if tensor.get("quantization") else ""
    return (
        f"{tensor['name']} {tensor['shape']} {tensor['dtype']} {tensor.get('layout') or '?'} "
        f"range {tensor.get('range')}{quantization}"
    )


def _print_artifact(info: dict[str, Any]) -> None:
    """The artifact description as aligned lines."""
    parity = info["parity"]
    macs = info["macs"]
    rows = [
        ("artifact", info["model"]),
        ("format", f"{info['format']} {info['precision']}, {info['size_bytes'] / 1e6:.2f} MB"),
        *[("input", _tensor_line(t)) for t in info["inputs"]],
        *[("output", _tensor_line(t)) for t in info["outputs"]],
        ("MACs", f"{macs / 1e9:.3f} G ({info['mac_method']})" if macs else "unknown"),
        *([("summary", info["summary"])] if info.get("summary") else []),
        (
            "ops",
            ", ".join(f"{k} x{v}" for k, v in info["ops"].items())
            if isinstance(info["ops"], dict)
            else info["ops"],
        ),
        (
            "op kinds",
            ", ".join(f"{v} {k}" for k, v in info["op_kinds"].items())
            if isinstance(info["op_kinds"], dict)
            else info["op_kinds"],
        ),
        (
            "parity",
            f"{parity.get('psnr_db')} dB vs {parity.get('reference')}, passed {parity.get('passed')}, "
            f"{parity.get('verified_by')}"
            if isinstance(parity, dict)
            else parity,
        ),
    ]
    rows.append(("grain", info["grain"]))
    for key, value in rows:
        click.echo(f"{key:<10} {value}")
    if "npu" in info:
        click.echo(f"npu        {info['npu']['verdict']}")
        for op in info["npu"]["float_ops"]:
            click.echo(f"  float    {op['op']:<16} {op['name']}")
