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
    A precision a format cannot do is reported as unavailable, with the reason. Exit 1 when parity fails.

    \b
    Examples:
      pocketgan export runs/quick/best.pt --format all --precision all --out dist/
      pocketgan export vintage --format onnx,tflite --precision fp32 --out dist/
    """


def _split(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if items == ("all",):
        return allowed
    bad = [item for item in items if item not in allowed]
    if bad or not items:
        raise UsageError(f"--{what} {text!r}: choose from {', '.join(allowed)} or all")
    return items


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
@click.option("--no-validate", is_flag=True, help="Skip the parity check against torch.")
@console.json_option("the results (one entry per artifact, with its parity)")
def export_command(
    source, formats, precisions, calibration, calibration_count, out, name, size, no_validate, json_target
):
    """Export a checkpoint or teacher spec (help: HELP). Example: pocketgan export vintage --format onnx"""
    config = ExportConfig(
        formats=_split(formats, FORMATS, "format"),
        precisions=_split(precisions, PRECISIONS, "precision"),
        size=size,
        out=out,
        calibration=calibration,
        calibration_count=calibration_count,
        validate=not no_validate,
        name=name,
    )
    result = export(source, config)
    for artifact in result.artifacts:
        parity = (artifact.manifest or {}).get("parity") or {}
        verdict = {True: "pass", False: "FAIL", None: "-"}[parity.get("passed")]
        where = str(artifact.path) if artifact.path else artifact.status
        console.say(
            f"{artifact.format:7s} {artifact.precision:5s} {verdict:4s} psnr {_number(parity.get('psnr_db')):>7s} dB"
            f"  max-abs {_number(parity.get('max_abs')):>8s}  {where}",
            json_target,
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
        raise ParityError(f"parity below threshold: {text}")
    return 0
