"""`pocketgan run`: apply an exported artifact to photos, folders and globs (torch-free).

Example: pocketgan run dist/student.fp32.onnx photos/ portrait.jpg -o out/ --format jpg
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import click

from pocketgan import artifacts, console, runtime
from pocketgan.runtime.batch import WriteOptions, collect_jobs, process
from pocketgan.runtime.provenance import ProvenanceLabel
from pocketgan.runtime.session import DEFAULT_MAX_SIDE
from pocketgan.runtime.video import SMOOTHING, ClipModel

video_context_option = click.option(
    "--video-context",
    type=click.Choice(["smoothed", "per-frame"]),
    default="smoothed",
    show_default=True,
    help="Videos, for artifacts with a context input: smoothed = the context thumbnail averaged over time "
    "(restarted at scene cuts) so the grade does not jump between frames; per-frame = each frame's own.",
)


def max_side_option(help_text: str):
    """The --max-side option of run, bench and eval: Session.run's working size cap (long side)."""
    return click.option(
        "--max-side", type=click.IntRange(min=16), default=DEFAULT_MAX_SIDE, show_default=True, help=help_text
    )


def _list_backends(ctx, param, value):
    if not value or ctx.resilient_parsing:
        return

    for name, status in runtime.available_backends().items():
        click.echo(f"{name}: {status}")
    ctx.exit(0)


@click.command(name="run")
@click.argument("model")
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
@max_side_option(
    "Working size cap (long side, pixels) for artifacts that run at any size; larger photos get the "
    "model's change carried to full size by guided upsampling."
)
@click.option(
    "--size",
    "size_mode",
    type=click.Choice(["full", "model"]),
    default="full",
    show_default=True,
    help="full: outputs keep the photo's detail (see above); model: resize to the model's size and back "
    "(the behaviour before full-resolution support; blurs large photos).",
)
@video_context_option
@click.option(
    "--grain",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Photos: strength of the teacher's grain added at full size, for artifacts whose manifest carries "
    "it (the zoo student's do); 0: none. Videos never get it (it would shimmer frame to frame).",
)
@click.option(
    "--providers",
    default=None,
    help="onnxruntime execution providers, comma-separated (e.g. xnnpack,cpu), if the build has them.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "jpg"]),
    default=None,
    help="Output image format [follows the input: a JPEG gives a JPEG (quality 95), anything else PNG].",
)
@click.option(
    "--no-label",
    is_flag=True,
    help="Do not write the AI-generated provenance label (XMP DigitalSourceType) into outputs.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace outputs that already exist (default: skip them, saying so; a rerun resumes).",
)
@click.option(
    "--in-place",
    is_flag=True,
    help="Allow an output to replace the input file it was made from (e.g. -o set to the input folder).",
)
@click.option(
    "--strip-metadata",
    is_flag=True,
    help="Write no EXIF (camera, copyright, dates, GPS place) into outputs; the label and sRGB profile stay.",
)
@click.option(
    "--list-backends",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_list_backends,
    help="Print each runtime backend and whether it can run here, then exit.",
)
@artifacts.artifact_options
@console.json_option("the run's summary (written, skipped and failed files, timing)")
@click.pass_context
def run_command(
    ctx,
    model,
    inputs,
    outdir,
    backend,
    threads,
    max_side,
    size_mode,
    video_context,
    grain,
    providers,
    fmt,
    no_label,
    artifact_format,
    artifact_precision,
    json_target,
    **writing,
):
    """Run MODEL (.onnx, .tflite, .mlpackage, .pte, a zoo name or a .pt student) on INPUT photos, videos, folders or globs.

    Every backend runs without torch but "executorch" (.pte), whose Python runtime links libtorch.

    \b
    MODEL may be a zoo name (vintage-mobile) or a student checkpoint (.pt): it is exported once (fp32
    ONNX unless --artifact-format/--precision say otherwise) into $POCKETGAN_CACHE or
    ~/.cache/pocketgan/artifacts, with a note; an install without the exporters prints the
    `pocketgan export` command to run instead (exit 2).

    \b
    Outputs have the input's size and its path relative to the folder (or the glob's folder) it came
    from, in OUTDIR; a file argument keeps its name. Outputs that would still share a name get -2, -3, ...
    in argument order (three x.jpg from three folders: x.png, x-2.png, x-3.png).

    \b
    Nothing is replaced unless asked: an output that exists is skipped (also one another run writes at
    the same moment; files are created exclusively), unless --overwrite; an output that would replace the
    input it is made from is skipped, unless --in-place; one that would replace another input, always.

    \b
    Colour: an input with an ICC profile (e.g. a Display P3 phone photo) is converted to sRGB before the
    model; outputs are sRGB and carry an sRGB profile. Metadata: outputs keep the input's EXIF (orientation
    set to 1, the pixels being upright) unless --strip-metadata, and carry an XMP label marking them as
    AI-generated (IPTC DigitalSourceType trainedAlgorithmicMedia, model sha256, version) unless
    --no-label. An animated WebP/PNG gives its first frame only, with a notice. Files in a folder that
    are neither images (.jpg .jpeg .png .webp .bmp .gif) nor videos are listed, not run.

    \b
    Videos (.mp4 .mov .webm, animated .gif) are run frame by frame (decode -> model -> encode, streamed:
    flat memory on a long clip) into the same container: same frame count, timestamps (frame rate), size
    and rotation, audio copied, input metadata kept unless --strip-metadata, the AI-generated label in
    the container's comment tag unless --no-label. Video is H.264 (mp4, mov; x264 crf 18), VP9 (webm) or
    GIF. A clip that cannot be decoded to its end (corrupt, truncated) is one error line, nothing written.

    \b
    Full resolution: an artifact that runs at any size processes the photo at its own size, down to
    --max-side on the long side; a fixed-size artifact runs at its (nearest) size. Where the working size
    is not the photo's, the output is photo + upsample(model(work) - work): the model's change (grade,
    tone) reaches full size while the photo keeps its own detail (guided upsampling). --size model
    resizes to the model size and back with Pillow's bicubic filter instead. A broken input (also one
    over Pillow's decompression-bomb limit, about 179 megapixels) is reported on one line and skipped;
    the exit code is 2 if any input failed, else 0.

    \b
    Examples:
      pocketgan run vintage-mobile photo.jpg -o out/
      pocketgan run dist/student.fp32.onnx photo.jpg -o out/ --json - > summary.json
      pocketgan run dist/student.int8.tflite photos/ "more/*.png" -o out/ --threads 2 --format jpg
      pocketgan run dist/student.fp32.onnx photos/ -o photos/ --format jpg --in-place   # replaces .jpg originals
      pocketgan run dist/student.int8.tflite clip.mp4 holiday/ -o out/ --threads 2   # videos and photos
    """
    runtime.keep_freed_memory()  # the resize buffers of one photo are reused for the next, not re-faulted
    provider_list = [p.strip() for p in providers.split(",") if p.strip()] if providers else None
    artifact = artifacts.resolve_model(model, artifact_format, artifact_precision)
    started = time.perf_counter()
    session = runtime.load(
        artifact,
        backend=backend,
        threads=threads,
        providers=provider_list,
        max_side=max_side,
        size_mode=size_mode,
        grain=grain,
    )
    inputs = collect_jobs(inputs, outdir, fmt)
    for text, reason in inputs.failures:
        click.echo(f"error: {text}: {reason}", err=True)
    if inputs.unsupported:
        names = ", ".join(str(path) for path in inputs.unsupported[:3])
        more = ", ..." if len(inputs.unsupported) > 3 else ""
        click.echo(
            f"note: {len(inputs.unsupported)} files are not images and were not run: {names}{more}", err=True
        )
    label = None if no_label else ProvenanceLabel(session.sha256, artifact.name)
    clip_model = partial(ClipModel, session, smoothing=SMOOTHING if video_context == "smoothed" else 0.0)
    report = process(session, inputs, outdir, WriteOptions(fmt, label, clip_model=clip_model, **writing))
    report.failed[:0] = inputs.failures
    seconds = time.perf_counter() - started
    console.say(report.summary(outdir, session.backend), json_target)
    console.emit_json(
        json_target,
        {"model": str(model), "artifact": str(artifact), "backend": session.backend, "out": str(outdir)}
        | report.to_json()
        | {"seconds": round(seconds, 3)},
    )
    ctx.exit(2 if report.failed else 0)
