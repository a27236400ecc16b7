"""`pocketgan explain ARTIFACT`: which layer makes an artifact differ from the torch model it came from.

Every intermediate tensor of the artifact (ONNX: exposed as extra graph outputs; TFLite: the interpreter's
preserved tensors, builtin kernels; Core ML: our ML Program interpreter) is compared with the same tensor of
the source model (its `torch.export` graph) on calibration images: SQNR (dB), cosine and max-abs per tensor.
Errors accumulate downstream, so layers are ranked by the SQNR they lose against their inputs ("drop"):
the layer that breaks int8 ranks first even when every later layer inherits its error. The first tensor
in graph order that drops by JUMP_DB or more is where the error first jumps.

Matching: ONNX and Core ML keep the torch graph's node names; TFLite names tensors by module scope, so a
tensor is matched to the torch node of a compatible shape (NCHW or NHWC) in that scope (or its parent's,
where the converter folded an op into another) with the highest SQNR (any scope when none fits). A tensor
that reaches its readers re-quantized (ONNX Q/DQ pair, TFLite QUANTIZE) is judged by what they read.

Example: pocketgan explain dist/student.int8.tflite --images 4 --json build/explain.json
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from pocketgan.errors import ModelLoadError, UsageError
from pocketgan.export._taps import Tap

log = logging.getLogger(__name__)

JUMP_DB = 10.0  # an op that loses this much SQNR against its inputs is where the error "jumps"
# Drops are measured from at most this: about what 8 bits give a full-scale signal (6.02 dB per bit), so
# one int8 rounding of an exact tensor (e.g. the image input, ~42 dB) is not mistaken for a broken layer.
SQNR_CAP_DB = 48.0
BULK_TAIL = 1e-3  # the share of largest magnitudes that the bulk SQNR clips
FORMATS = ("onnx", "tflite", "coreml")


@dataclass
class LayerRow:
    """One torch tensor compared with its artifact counterpart (graph order is `index`)."""

    index: int
    tensor: str  # the torch graph node ("conv2d_5")
    module: str  # its innermost module path ("blocks.0.0"; "" for ops of the top module)
    op: str
    shape: list[int]
    sqnr_db: float
    cosine: float
    max_abs: float
    drop_db: float  # SQNR lost against its inputs (both capped at SQNR_CAP_DB)
    artifact_tensor: str
    match: str  # "name" | "scope" | "shape" | "quantized copy"
    consumer_modules: tuple[str, ...] = ()  # modules of the ops that read this tensor

    @property
    def layer(self) -> str:
        return self.module or f"(top) {self.tensor}"


@dataclass
class Explanation:
    artifact: str
    format: str
    precision: str
    images: int
    rows: list[LayerRow] = field(default_factory=list)  # graph order
    torch_tensors: int = 0
    output_psnr_db: float | None = None

    @property
    def ranked(self) -> list[LayerRow]:
        """Rows by drop (largest first), then by SQNR (lowest first)."""
        return sorted(self.rows, key=lambda r: (-r.drop_db, r.sqnr_db, r.index))

    @property
    def first_jump(self) -> LayerRow | None:
        """The first row in graph order whose drop reaches JUMP_DB (None: no layer loses that much)."""
        return next((r for r in self.rows if r.drop_db >= JUMP_DB), None)

    def to_json(self) -> dict[str, Any]:
        jump = self.first_jump
        return {
            "artifact": self.artifact,
            "format": self.format,
            "precision": self.precision,
            "images": self.images,
            "torch_tensors": self.torch_tensors,
            "matched_tensors": len(self.rows),
            "output_psnr_db": _finite(self.output_psnr_db),
            "jump_db": JUMP_DB,
            "first_jump": _row_json(jump) if jump else None,
            "ranked": [_row_json(r) for r in self.ranked],
        }


def _finite(value: float | None) -> float | str | None:
    if value is None:
        return None
    return round(value, 3) if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _row_json(row: LayerRow) -> dict[str, Any]:
    return {
        "layer": row.layer,
        "module": row.module,
        "tensor": row.tensor,
        "op": row.op,
        "shape": row.shape,
        "sqnr_db": _finite(row.sqnr_db),
        "drop_db": _finite(row.drop_db),
        "cosine": round(row.cosine, 6),
        "max_abs": round(row.max_abs, 6),
        "artifact_tensor": row.artifact_tensor,
        "match": row.match,
    }


def _aligned(reference: np.ndarray, value: np.ndarray) -> np.ndarray | None:
    """`value` in `reference`'s layout: as is, or NHWC -> NCHW for 4-D tensors; None if neither fits."""
    if value.shape == reference.shape:
        return value
    if value.ndim == 4 and reference.ndim == 4:
        n, c, h, w = reference.shape
        if value.shape == (n, h, w, c):
            return value.transpose(0, 3, 1, 2)
    return None


def _sqnr(ref: np.ndarray, out: np.ndarray) -> float:
    noise = float(np.sum((ref - out) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(max(float(np.sum(ref**2)), 1e-30) / noise)


def _metrics(reference: list[np.ndarray], values: list[np.ndarray]) -> tuple[float, float, float]:
    """(SQNR dB, cosine, max-abs) over all images together.

    SQNR is the lower of the whole tensor's and its bulk's: both clipped to the magnitude that all but
    BULK_TAIL of the reference stays within. A few huge activations dominate the energy, so they would
    hide that int8 rounded every other one away.
    """
    ref = np.concatenate([r.ravel() for r in reference]).astype(np.float64)
    out = np.concatenate([v.ravel() for v in values]).astype(np.float64)
    if not np.isfinite(out).all():
        return -math.inf, 0.0, math.inf
    sqnr = _sqnr(ref, out)
    if ref.size:
        bound = float(np.quantile(np.abs(ref), 1 - BULK_TAIL))
        sqnr = min(sqnr, _sqnr(np.clip(ref, -bound, bound), np.clip(out, -bound, bound)))
    norms = float(np.linalg.norm(ref) * np.linalg.norm(out))
    cosine = float(ref @ out / norms) if norms > 0 else float(np.array_equal(ref, out))
    return sqnr, cosine, float(np.max(np.abs(ref - out))) if ref.size else 0.0


def _scope_attrs(name: str) -> list[str] | None:
    """TFLite tensor scope "pkg.ChannelsLast/pkg.PatchResNet_model/torch...Conv2d_0;3" -> ["0"] (None: no scope).

    Each segment is "Class_attribute"; the wrapper (no attribute) and the student itself ("model") drop out.
    """
    scope = name.split(";")[0]
    if "/" not in scope:
        return None
    attrs = []
    for segment in scope.split("/")[1:]:
        _, _, attribute = segment.rpartition(".")[2].partition("_")
        attrs.append(attribute)
    return attrs[1:] if attrs and attrs[0] == "model" else attrs


def _in_scope(module: str, attrs: list[str]) -> bool:
    """Whether torch module path `module` fits scope attributes (ModuleList levels may be missing)."""
    parts = module.split(".") if module else []
    if not attrs:
        return not parts
    if not parts or parts[-1] != attrs[-1]:
        return False
    position = 0
    for attribute in attrs:
        while position < len(parts) and parts[position] != attribute:
            position += 1
        if position == len(parts):
            return False
        position += 1
    return True


def _candidates(tap: Tap, reference: dict[str, Tap], by_name: bool) -> tuple[list[Tap], str]:
    if by_name:
        found = reference.get(tap.name)
        return ([found], "name") if found else ([], "name")
    shaped = [r for r in reference.values() if _aligned(r.values[0], tap.values[0]) is not None]
    attrs = _scope_attrs(tap.name)
    # The converter folds ops into their neighbours (a scale into the conv before it), so the enclosing
    # module's nodes are candidates too.
    scopes = [] if attrs is None else [attrs, attrs[:-1]] if attrs else [attrs]
    scoped = [r for r in shaped if any(_in_scope(r.module, a) for a in scopes)]
    return (scoped, "scope") if scoped else (shaped, "shape")


def match_taps(artifact: list[Tap], reference: dict[str, Tap], by_name: bool) -> list[LayerRow]:
    """One row per torch tensor that some artifact tensor matches."""
    order = {name: i for i, name in enumerate(reference)}
    best: dict[str, LayerRow] = {}
    matched: dict[str, str] = {}  # artifact tensor -> torch node
    for tap in artifact:
        candidates, how = _candidates(tap, reference, by_name)
        if tap.requantizes in matched:  # a QUANTIZE: what the readers of that tensor see
            candidates, how = [reference[matched[tap.requantizes]]], "quantized copy"
        scored = []
        for ref in candidates:
            values = [_aligned(r, v) for r, v in zip(ref.values, tap.values, strict=True)]
            if any(v is None for v in values):
                continue
            scored.append((_metrics(ref.values, values), ref))
        if not scored:
            continue
        (sqnr, cosine, max_abs), ref = max(scored, key=lambda item: (item[0][0], item[0][1]))
        row = LayerRow(
            order[ref.name],
            ref.name,
            ref.module,
            ref.op,
            list(ref.values[0].shape),
            sqnr,
            cosine,
            max_abs,
            0.0,
            tap.name,
            how,
            tuple(dict.fromkeys(reference[u].module for u in ref.users if u in reference)),
        )
        # By name, the dequantized tensor that consumers see stands in (the worst); by value, the likeliest
        # counterpart (the closest) does, so a stray tensor of the same shape cannot pose as the layer.
        matched[tap.name] = ref.name
        current = best.get(ref.name)
        worst_wins = by_name or tap.requantizes
        if current is None or (sqnr < current.sqnr_db if worst_wins else sqnr > current.sqnr_db):
            best[ref.name] = row
    rows = sorted(best.values(), key=lambda r: r.index)
    _fill_drops(rows, reference)
    return rows


def _fill_drops(rows: list[LayerRow], reference: dict[str, Tap]) -> None:
    """drop = (lowest SQNR among the nearest measured inputs) - own SQNR, both capped at SQNR_CAP_DB."""
    measured = {r.tensor: min(r.sqnr_db, SQNR_CAP_DB) for r in rows}
    effective: dict[str, float] = {}  # a tensor's SQNR, or its inputs' where it was not measured
    upstream: dict[str, float] = {}
    for name, tap in reference.items():
        upstream[name] = min((effective.get(i, SQNR_CAP_DB) for i in tap.inputs), default=SQNR_CAP_DB)
        effective[name] = measured.get(name, upstream[name])
    for row in rows:
        row.drop_db = upstream[row.tensor] - measured[row.tensor]


def artifact_taps(path: Path, fmt: str, images: np.ndarray) -> list[Tap]:
    from pocketgan.export import _taps

    readers = {"onnx": _taps.onnx_taps, "tflite": _taps.tflite_taps, "coreml": _taps.coreml_taps}
    if fmt not in readers:
        raise UsageError(f"{path}: explain reads {', '.join(FORMATS)} artifacts, not {fmt}")
    return readers[fmt](path, images)


def explain_artifact(path: Path, fmt: str, precision: str, model, images: np.ndarray) -> Explanation:
    """Compare `path` with the prepared torch `model` on NHWC float `images` (N, H, W, 3) in [-1, 1]."""
    from pocketgan.export._taps import torch_taps
    from pocketgan.export.prepare import rewrite_conv_transpose

    if fmt == "tflite":  # the graph the TFLite exporter converted
        model, _ = rewrite_conv_transpose(model)
    reference = torch_taps(model, images)
    rows = match_taps(artifact_taps(path, fmt, images), reference, by_name=fmt != "tflite")
    result = Explanation(str(path), fmt, precision, len(images), rows, len(reference))
    result.output_psnr_db = _output_psnr(path, model, images)
    return result


def _output_psnr(path: Path, model, images: np.ndarray) -> float | None:
    import torch

    from pocketgan.export._runners import predict
    from pocketgan.export._taps import torch_inputs
    from pocketgan.export.prepare import ChannelsLast
    from pocketgan.metrics import psnr

    wrapped = ChannelsLast(model).eval()
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    with torch.no_grad():
        expected = np.concatenate([wrapped(*torch_inputs(wrapped, image)).numpy() for image in images])
    expected = expected.transpose(0, 3, 1, 2)
    try:
        output, _ = predict(path, x)
    except Exception as exc:  # Core ML on Linux: the tensors above came from our interpreter anyway
        log.info("output PSNR not measured: %s", exc)
        return None
    return psnr(output, expected)


def source_model(manifest: dict[str, Any], artifact: Path):
    """The torch model an artifact was exported from, prepared as the exporters saw it (BatchNorm folded)."""
    from pocketgan.evals.common import load_source_student
    from pocketgan.export.prepare import prepare_model
    from pocketgan.models.resolve import resolve

    source = manifest.get("source") or {}
    if source.get("kind") == "teacher" and source.get("spec"):
        model = resolve(source["spec"]).module
    else:
        model, why = load_source_student(manifest, artifact)
        if model is None:
            raise ModelLoadError(f"{artifact}: {why.removeprefix('unavailable: ')}")
    shape = manifest["input"]["shape"]
    nhwc = manifest["input"].get("layout") == "NHWC"
    size = (int(shape[1]), int(shape[2])) if nhwc else (int(shape[2]), int(shape[3]))  # (H, W)
    return prepare_model(model, size[0])[0], size


def explanation_images(manifest: dict[str, Any], size: tuple[int, int], count: int) -> np.ndarray:
    """The first `count` calibration images the artifact was exported with, at its (H, W), NHWC float32 in
    [-1, 1] (a fixed non-square size gets the calibration images of that size, as its exporter did)."""
    from pocketgan.export.base import ExportConfig
    from pocketgan.export.pipeline import calibration_images

    folder = (manifest.get("export") or {}).get("calibration")
    folder = folder if folder and Path(folder).is_dir() else None
    height, width = size
    config = ExportConfig(precisions=("fp32",), size=height, calibration=folder, calibration_count=count)
    images = calibration_images(config, None if height == width else size)[:count]
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def explain(artifact: str | Path, images: int = 8) -> Explanation:
    """Per-layer triage of `artifact` (with its manifest beside it) against its source torch model."""
    from pocketgan.evals.common import artifact_format
    from pocketgan.manifest import read_manifest

    path = Path(artifact)
    if not path.exists():
        raise UsageError(f"{path}: no such artifact")
    if images < 1:
        raise UsageError(f"--images must be >= 1, got {images}")
    manifest = read_manifest(path)
    if not manifest:
        raise UsageError(f"{path}: no manifest beside it (explain needs the source it names)")
    model, size = source_model(manifest, path)
    fmt = artifact_format(path, manifest)
    x = explanation_images(manifest, size, images)
    return explain_artifact(path, fmt, str(manifest.get("precision", "?")), model, x)


def format_report(result: Explanation, top: int = 15) -> str:
    """The ranked table and the first jump, as `pocketgan explain` prints them."""
    psnr = "-" if result.output_psnr_db is None else f"{result.output_psnr_db:.2f} dB"
    lines = [
        f"{result.artifact} ({result.format} {result.precision}) vs its torch source on {result.images} "
        f"calibration images: output PSNR {psnr}; {len(result.rows)} of {result.torch_tensors} torch "
        "tensors matched",
    ]
    jump = result.first_jump
    if jump is not None:
        lines.append(
            f"error first jumps at {jump.layer} ({jump.op} -> {jump.tensor}): SQNR {jump.sqnr_db:.1f} dB, "
            f"{jump.drop_db:.1f} dB below its inputs"
        )
    elif result.rows:
        lines.append(f"no layer loses {JUMP_DB:g} dB or more against its inputs")
    table = [["rank", "layer", "op", "tensor", "shape", "SQNR dB", "drop dB", "cosine"]]
    for rank, row in enumerate(result.ranked[:top], 1):
        table.append(
            [
                str(rank),
                row.layer,
                row.op,
                row.tensor,
                "x".join(map(str, row.shape)),
                f"{row.sqnr_db:.1f}",
                f"{row.drop_db:.1f}",
                f"{row.cosine:.5f}",
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip() for line in table]
    if len(result.rows) > top:
        lines.append(f"... {len(result.rows) - top} more rows in --json")
    return "\n".join(lines)


@click.command("explain")
@click.argument("artifact", type=click.Path())
@click.option("--images", default=8, show_default=True, help="Calibration images to compare on.")
@click.option("--top", default=15, show_default=True, help="Rows of the ranked table to print.")
@click.option("--json", "json_path", default=None, help="Write every row as JSON to FILE ('-': stdout).")
def explain_command(artifact: str, images: int, top: int, json_path: str | None) -> None:
    """Per-layer triage: where ARTIFACT's tensors drift from the torch model it came from.

    Ranks layers by the SQNR they lose against their inputs and names where the error first jumps;
    `pocketgan export --keep-float auto` keeps the top layers in float until parity passes.

    \b
    Examples:
      pocketgan explain dist/student.int8.tflite
      pocketgan explain dist/student.int8.onnx --images 4 --json build/explain.json
    """
    from pocketgan.manifest import atomic_write_json

    result = explain(artifact, images=images)
    if json_path == "-":
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(format_report(result, top=top))
    if json_path:
        atomic_write_json(json_path, result.to_json())
        click.echo(f"wrote {json_path}")
