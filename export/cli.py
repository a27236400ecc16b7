"""`pocketgan export`: a student checkpoint or teacher spec to ONNX / Core ML / TFLite / ExecuTorch, with parity.

Example: pocketgan export runs/quick/best.pt --format all --precision all --out dist/
"""

from __future__ import annotations

import click

from pocketgan import console
from pocketgan.errors import ParityError, PocketGANError, UnsupportedOpError, UsageError
from pocketgan.export import export
from pocketgan.export.base import PRECISIONS, ExportConfig, registered_exporters
from pocketgan.export.parity import thresholds_summary

FORMATS = tuple(registered_exporters())

HELP = f"""Export CHECKPOINT (a student .pt) or TEACHER_SPEC (e.g. vintage) to phone formats.

    Every artifact gets OUT/NAME.PRECISION.EXT and a manifest beside it; each is run on held-out photos
    and compared with torch ({thresholds_summary()}).
    int8-full quantizes every op (TFLite: int8 image I/O; ONNX: QDQ on every op) for phone NPUs; each
    manifest lists the ops left in float ("npu"). A precision a format cannot do is reported as unavailable,
    with the reason. Exit 1 when parity fails (`pocketgan explain ARTIFACT` says why).
    A student's artifacts take the image at many sizes plus a 256x256 context thumbnail: ONNX, Core ML and
    ExecuTorch one file with dynamic height/width, TFLite one file per --sizes entry
    (NAME.PRECISION.WxH.tflite); parity is checked at every --sizes entry.

    \b
    Examples:
      pocketgan export runs/quick/best.pt --format all --precision all --out dist/
      pocketgan export vintage --format onnx,tflite --precision fp32 --out dist/
      pocketgan export runs/quick/best.pt --format onnx,tflite --precision int8 --keep-float auto
      pocketgan export runs/quick/best.pt --format onnx --precision fp32 --sizes 256x256,640x480
    """


def _split(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if items == ("all",):
        return allowed
    bad = [item for item in items if item not in allowed]
    if bad or not items:
        raise UsageError(f"--{what} {text!r}: choose from {', '.join(allowed)} or all")
    return items


def sizes_option(text: str) -> tuple[tuple[int, int], ...]:
    """ "1920x1080,256x256" (W x H) -> ((1080, 1920), (256, 256)) as (H, W)."""
    sizes = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        width, _, height = part.partition("x")
        if not (width.isdigit() and height.isdigit()):
            raise UsageError(f"--sizes {text!r}: expected WxH[,WxH...], e.g. 1920x1080")
        sizes.append((int(height), int(width)))
    return tuple(sizes)


def keep_float_option(text: str | None) -> tuple[tuple[str, ...], float | None]:
    """--keep-float "auto", "auto:38" or "blocks.0.0,head" -> (layer names, budget dB or None)."""
    from pocketgan.export.parity import THRESHOLDS

    if not text:
        return (), None
    if text == "auto" or text.startswith("auto:"):
        budget = text.partition(":")[2]
        try:
            return (), float(budget) if budget else THRESHOLDS["int8"][1]
        except ValueError:
            raise UsageError(f"--keep-float {text!r}: the budget after auto: is a PSNR in dB") from None
    layers = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not layers:
        raise UsageError("--keep-float: give auto[:DB] or layer names")
    return layers, None


def explain_hint(paths) -> str:
    """The commands that explain failed artifacts, for parity failure messages."""
    return "; see why: " + "; ".join(f"pocketgan explain {path}" for path in paths)


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.2e}"


@click.command(name="export", help=HELP)
@click.argument("source", metavar="CHECKPOINT|TEACHER_SPEC")
@click.option("--format", "formats", default="all", show_default=True, help=f"{','.join(FORMATS)} or all.")
@click.option(
    "--precision",
    "precisions",
    default="fp32,fp16,int8",
    show_default=True,
    help=f"{','.join(PRECISIONS)} or all.",
)
@click.option(
    "--keep-float",
    "keep_float",
    default=None,
    metavar="auto[:DB]|LAYER,...",
    help="int8: keep these layers (module names) in float, or auto: the fewest, chosen by `pocketgan "
    "explain`, that reach DB of parity PSNR [the int8 threshold].",
)
@click.option(
    "--calibration", type=click.Path(), help="Folder of images for int8 calibration [embedded set]."
)
@click.option(
    "--calibration-count",
    default=ExportConfig.calibration_count,
    show_default=True,
    type=int,
    help="How many calibration images int8 sees (more: closer to fp32, slower export).",
)
@click.option("--out", default=ExportConfig.out, show_default=True, type=click.Path(), help="Output folder.")
@click.option("--name", default=None, help="Artifact base name [student, or teacher for a teacher spec].")
@click.option(
    "--size", default=ExportConfig.size, show_default=True, type=int, help="Static input size (square)."
)
@click.option(
    "--sizes",
    default=",".join(f"{w}x{h}" for h, w in ExportConfig.sizes),
    show_default=True,
    help="W x H sizes a student's artifacts are checked at (and TFLite's files are made for).",
)
@click.option(
    "--grain",
    default=ExportConfig.grain,
    show_default=True,
    metavar="auto|none|FILE",
    help="The teacher's grain statistics for the runtime: auto takes grain.json beside the checkpoint "
    "(the zoo student has one), none ships none.",
)
@click.option("--no-validate", is_flag=True, help="Skip the parity check against torch.")
@console.json_option("the results (one entry per artifact, with its parity)")
def export_command(
    source,
    formats,
    precisions,
    keep_float,
    calibration,
    calibration_count,
    out,
    name,
    size,
    sizes,
    grain,
    no_validate,
    json_target,
):
    """Export a checkpoint or teacher spec (help: HELP). Example: pocketgan export vintage --format onnx"""

    layers, budget = keep_float_option(keep_float)
    config = ExportConfig(
        keep_float=layers,
        keep_float_budget_db=budget,
        formats=_split(formats, FORMATS, "format"),
        precisions=_split(precisions, PRECISIONS, "precision"),
        size=size,
        sizes=sizes_option(sizes),
        out=out,
        calibration=calibration,
        calibration_count=calibration_count,
        validate=not no_validate,
        name=name,
        grain=grain,
    )
    result = export(source, config)
    for artifact in result.artifacts:
        parity = (artifact.manifest or {}).get("parity") or {}
        verdict = {True: "pass", False: "FAIL", None: "-"}[parity.get("passed")]
        where = str(artifact.path) if artifact.path else artifact.status
        kept = (artifact.manifest or {}).get("keep_float")
        console.say(
            f"{artifact.format:7s} {artifact.precision:9s} {verdict:4s} psnr {_number(parity.get('psnr_db')):>7s} dB"
            f"  max-abs {_number(parity.get('max_abs')):>8s}  {where}"
            + (f"  float: {', '.join(kept)}" if kept else ""),
            json_target,
        )
        search = (artifact.manifest or {}).get("keep_float_search")
        if search and not search["passed"]:
            click.echo(
                f"        keep-float: {search['budget_db']:g} dB not reached with {len(kept)} layers in float",
                err=True,
            )
    console.say(
        f"{sum(a.status.is_ok for a in result.artifacts)} artifacts in {result.seconds:.1f} s -> {out}",
        json_target,
    )
    if json_target:
        payload = {
            "source": source,
            "seconds": round(result.seconds, 2),
            "artifacts": [
                {
                    "path": str(a.path) if a.path else None,
                    "format": a.format,
                    "precision": a.precision,
                    "status": a.status,
                    "seconds": round(a.seconds, 2),
                    "parity": (a.manifest or {}).get("parity"),
                }
                for a in result.artifacts
            ],
        }
        console.emit_json(json_target, payload)
    unsupported = [a.status.error for a in result.failed if isinstance(a.status.error, UnsupportedOpError)]
    if unsupported:
        raise unsupported[0]
    if result.failed:
        first = result.failed[0]
        raise PocketGANError(
            f"{len(result.failed)} artifact(s) failed; {first.format} {first.precision}: {first.status}"
        )
    if result.parity_failures:
        text = "; ".join(
            f"{a.format} {a.precision}: psnr {_number(a.manifest['parity']['psnr_db'])} dB, "
            f"max-abs {_number(a.manifest['parity']['max_abs'])} (needs {a.manifest['parity']['threshold']})"
            + (
                f", first non-finite op {a.manifest['parity']['first_nonfinite_op']}"
                if a.manifest["parity"].get("first_nonfinite_op")
                else ""
            )
            for a in result.parity_failures
        )
        raise ParityError(
            f"parity below threshold: {text}" + explain_hint(a.path for a in result.parity_failures)
        )
    return 0
