"""`pocketgan run`: apply an exported artifact to photos, folders and globs (torch-free).

Example: pocketgan run dist/student.fp32.onnx photos/ portrait.jpg -o out/ --format jpg
"""

from __future__ import annotations

import glob
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from pocketgan import runtime
from pocketgan.errors import ImageLoadError, PocketGANError
from pocketgan.images import find_images, load_image
from pocketgan.runtime.provenance import ProvenanceLabel, write_image

GLOB_CHARS = "*?["


@dataclass
class Job:
    """One input file and where its output goes (relative to the output folder)."""

    source: Path
    output: Path


@dataclass
class RunReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _folder_jobs(folder: Path, outdir: Path, fmt: str) -> list[Job]:
    outdir = outdir.resolve()
    jobs = []
    for path in find_images(folder):
        if outdir == path.resolve().parent or outdir in path.resolve().parents:
            continue  # never feed our own outputs back in when OUTDIR sits inside the input folder
        jobs.append(Job(path, path.relative_to(folder).with_suffix(f".{fmt}")))
    return jobs


def collect_jobs(inputs: tuple[str, ...], outdir: Path, fmt: str) -> tuple[list[Job], list[tuple[str, str]]]:
    """Expand files, folders (recursive) and globs into jobs; inputs that match nothing become failures."""
    jobs: list[Job] = []
    failures: list[tuple[str, str]] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            jobs += _folder_jobs(path, outdir, fmt)
        elif path.exists():
            jobs.append(Job(path, Path(path.name).with_suffix(f".{fmt}")))
        elif any(char in text for char in GLOB_CHARS):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            if not matches:
                failures.append((text, "no files match this pattern"))
            for match in matches:
                if match.is_dir():
                    jobs += _folder_jobs(match, outdir, fmt)
                else:
                    jobs.append(Job(match, Path(match.name).with_suffix(f".{fmt}")))
        else:
            failures.append((text, "no such file or folder"))
    return _deduplicate(jobs), failures


def _deduplicate(jobs: list[Job]) -> list[Job]:
    """Drop repeated sources; give outputs that would collide (a.jpg, a.png -> a.png) distinct names."""
    seen_sources: set[Path] = set()
    taken: set[Path] = set()
    unique = []
    for job in jobs:
        key = job.source.resolve()
        if key in seen_sources:
            continue
        seen_sources.add(key)
        output = job.output
        if output in taken:
            output = output.with_name(f"{job.source.stem}_{job.source.suffix.lstrip('.')}{output.suffix}")
        taken.add(output)
        unique.append(Job(job.source, output))
    return unique


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def process(session, jobs: list[Job], outdir: Path, fmt: str, label, overwrite: bool) -> RunReport:
    """Run every job; a broken input is reported on one line and skipped, the rest still run."""
    from PIL import Image
    from tqdm import tqdm

    report = RunReport()
    progress = tqdm(jobs, desc="pocketgan run", unit="image", file=sys.stderr, disable=None)
    for job in progress:
        destination = outdir / job.output
        if destination.exists() and not overwrite:
            report.skipped.append((job.source, destination))
            progress.write(f"skipped {job.source}: {destination} exists (use --overwrite)", file=sys.stderr)
            continue
        try:
            result = session.run(load_image(job.source))
            write_image(result, destination, label, fmt)
        except ImageLoadError as exc:
            report.failed.append((str(job.source), _one_line(exc)))
            progress.write(f"error: {_one_line(exc)}", file=sys.stderr)
        except (PocketGANError, OSError, ValueError, MemoryError, Image.DecompressionBombError) as exc:
            report.failed.append((str(job.source), _one_line(exc)))
            progress.write(f"error: {job.source}: {_one_line(exc)}", file=sys.stderr)
        else:
            report.written.append(destination)
    progress.close()
    return report


def _list_backends(ctx, param, value):
    if not value or ctx.resilient_parsing:
        return

    for name, status in runtime.available_backends().items():
        click.echo(f"{name}: {status}")
    ctx.exit(0)


@click.command(name="run")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "outdir",
    type=click.Path(path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Output folder (folder inputs keep their sub-folders).",
)
@click.option("--backend", default=None, help="Runtime backend (default: by file type). See --list-backends.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Inference threads.")
@click.option(
    "--providers",
    default=None,
    help="onnxruntime execution providers, comma-separated (e.g. xnnpack,cpu), if the build has them.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "jpg"]),
    default="png",
    show_default=True,
    help="Output image format.",
)
@click.option(
    "--no-label",
    is_flag=True,
    help="Do not write the AI-generated provenance label (XMP DigitalSourceType) into outputs.",
)
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist (default: skip them).")
@click.option(
    "--list-backends",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_list_backends,
    help="Print each runtime backend and whether it can run here, then exit.",
)
@click.pass_context
def run_command(ctx, model, inputs, outdir, backend, threads, providers, fmt, no_label, overwrite):
    """Run MODEL (.onnx, .tflite, .mlpackage) on INPUT photos, folders (recursive) or globs.

    Outputs have the input's size and name, in OUTDIR, and carry an XMP label marking them as
    AI-generated (IPTC DigitalSourceType trainedAlgorithmicMedia, model sha256, PocketGAN version).
    Images are resized to the model size and back with Pillow's bicubic filter. A broken input is
    reported on one line and skipped; the exit code is 2 if any input failed, else 0.

    \b
    Examples:
      pocketgan run dist/student.fp32.onnx photo.jpg -o out/
      pocketgan run dist/student.int8.tflite photos/ "more/*.png" -o out/ --threads 2 --format jpg
    """
    runtime.keep_freed_memory()  # the resize buffers of one photo are reused for the next, not re-faulted
    provider_list = [p.strip() for p in providers.split(",") if p.strip()] if providers else None
    session = runtime.load(model, backend=backend, threads=threads, providers=provider_list)
    jobs, failures = collect_jobs(inputs, outdir, fmt)
    for text, reason in failures:
        click.echo(f"error: {text}: {reason}", err=True)
    label = None if no_label else ProvenanceLabel(session.sha256, Path(model).name)
    report = process(session, jobs, outdir, fmt, label, overwrite)
    report.failed[:0] = failures
    click.echo(
        f"{len(report.written)} written to {outdir}, {len(report.skipped)} skipped (exist), "
        f"{len(report.failed)} failed ({session.backend})"
    )
    ctx.exit(2 if report.failed else 0)
