"""The `bench`, `eval` and `parity` verbs: parse, call the evals API, print.

Example: pocketgan bench dist/student.fp32.onnx --threads 2 --iterations 50 --json bench.json
"""

from __future__ import annotations

from pathlib import Path

import click

from pocketgan import console
from pocketgan.artifacts import artifact_options, resolve_folder, resolve_model
from pocketgan.config import DEFAULT_TEACHER
from pocketgan.errors import CheckFailed
from pocketgan.evals.bench import BenchConfig, bench, parse_sizes
from pocketgan.evals.bench import format_table as bench_table
from pocketgan.evals.evaluate import EvalConfig, evaluate
from pocketgan.evals.parity import ParityConfig, check_parity
from pocketgan.evals.parity import format_table as parity_table
from pocketgan.runtime.cli import max_side_option, video_context_option


@click.command("bench")
@click.argument("models", nargs=-1, required=True)
@click.option("--threads", default=2, show_default=True, help="Intra-op threads, fixed for every model.")
@click.option("--warmup", default=5, show_default=True, help="Untimed runs after the first run.")
@click.option(
    "--iterations",
    default=BenchConfig.iterations,
    show_default=True,
    help="Timed runs; p90 is shown from 10, p99 from 100.",
)
@click.option("--backend", default=None, help="Runtime backend (default: chosen by file type).")
@click.option(
    "--size",
    "sizes",
    default=None,
    help="Photo sizes, N or WxH comma-separated (e.g. 1024,1920x1080,4032x3024): per size the engine at the "
    "working size `pocketgan run` picks, and end to end (decode a JPEG, run, encode a JPEG). Default: the "
    "engine at the model's size (256 for dynamic models).",
)
@max_side_option("Working size cap, as `pocketgan run --max-side`.")
@click.option(
    "--video",
    "videos",
    default=None,
    help="Video frame sizes, WxH comma-separated (e.g. 1280x720,1920x1080): per size frames/s of the engine "
    "at the working size (video-engine), Session.run per decoded frame (video-frame) and decode -> run -> "
    "encode of a test clip of warmup + iterations frames (video-e2e), with peak RSS.",
)
@video_context_option
@artifact_options
@console.json_option("the rows")
def bench_command(
    models,
    threads,
    warmup,
    iterations,
    backend,
    sizes,
    max_side,
    videos,
    video_context,
    artifact_format,
    artifact_precision,
    json_target,
):
    """Time artifacts, each in a fresh process: load, first run, p50/p90/p99/mean, peak RSS, size.

    A MODEL is an artifact, a zoo name (vintage-mobile) or a .pt student, exported once into the cache
    (see `pocketgan run --help`). A percentile needs enough iterations to mean something (pN: at least
    100 / (100 - N)); with fewer it is shown as '-' (null in JSON). A model whose manifest's sha256 or
    size does not match it is refused (exit 2) before anything is timed; exit 1 when a model could not be
    loaded or run.

    \b
    Examples:
      pocketgan bench dist/student.fp32.onnx dist/student.int8.tflite --threads 2
      pocketgan bench vintage-mobile --artifact-format tflite --precision int8
      pocketgan bench dist/*.onnx --iterations 200 --json - > build/bench.json
      pocketgan bench dist/student.int8.tflite --size 1024,1920x1080,4032x3024 --warmup 1 --iterations 10
      pocketgan bench dist/student.int8.tflite --video 1280x720,1920x1080 --warmup 10 --iterations 150
    """
    paths = [resolve_model(m, artifact_format, artifact_precision) for m in models]
    photo_sizes = parse_sizes(sizes) if sizes else ()
    video_sizes = parse_sizes(videos) if videos else ()
    config = BenchConfig(
        threads,
        warmup,
        iterations,
        backend=backend,
        photo_sizes=photo_sizes,
        max_side=max_side,
        video_sizes=video_sizes,
        stabilised=video_context == "smoothed",
    )
    result = bench(paths, config)
    console.say(bench_table(result.rows), json_target)
    console.emit_json(json_target, result.to_json())
    if result.failed:  # the table's notes give each one's reason
        raise _load_failures(result.failed, "model", len(result.rows))


@click.command("eval")
@click.option(
    "--teacher",
    default=DEFAULT_TEACHER,
    show_default=True,
    help="Teacher spec: vintage, pkg.module:factory (with --teacher-weights), a .pt2 or an .onnx.",
)
@click.option(
    "--teacher-weights", default=None, type=click.Path(), help="State dict for a pkg.module:factory teacher."
)
@click.option(
    "--artifacts",
    required=True,
    help="Folder of artifacts with *.manifest.json, or a zoo name / .pt student (exported once, cached).",
)
@click.option(
    "--data",
    default=None,
    type=click.Path(),
    help="A folder or glob of your own images to evaluate on (default: the embedded photo set's --split).",
)
@click.option(
    "--split",
    default="test",
    show_default=True,
    help="Embedded photo set split(s) to evaluate on: test, validation, or validation,test.",
)
@click.option("--size", default=256, show_default=True, help="Evaluation size (square, centre-cropped).")
@click.option(
    "--resolution",
    type=click.IntRange(min=16),
    default=None,
    help="Full-size eval instead: photos at this long side (not centre-cropped, never scaled up), the teacher "
    "run at that size (cached on disk), artifacts through Session.run as `pocketgan run` runs them; adds the "
    "detail ratio and 1:1 crops in report.html.",
)
@max_side_option("With --resolution: the working size cap, as `pocketgan run --max-side`.")
@click.option("--out", default="build/eval", show_default=True, type=click.Path(), help="Report folder.")
@click.option("--threads", default=2, show_default=True, help="Threads for every timed model.")
@click.option("--warmup", default=3, show_default=True, help="Untimed runs per artifact before timing.")
@click.option("--iterations", default=20, show_default=True, help="Timed runs per artifact.")
@click.option("--teacher-iterations", default=3, show_default=True, help="Timed torch runs of the teacher.")
@click.option("--lpips-model", default=None, type=click.Path(), help="Local LPIPS ONNX (x, y) -> distance.")
@click.option(
    "--fid-model", default=None, type=click.Path(), help="Local feature ONNX for FID (image -> (1, D))."
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option(
    "--video/--no-video",
    default=True,
    show_default=True,
    help="Video section: flicker of each student artifact vs the teacher on two test clips with known motion "
    "(--size wide, 9:16, 16 frames; teacher frames cached), per frame and stabilised, frames/s, and an "
    "animated input | teacher | student preview in report.html.",
)
@artifact_options
@console.json_option("eval.json's content")
def eval_command(artifacts, out, no_progress, artifact_format, artifact_precision, json_target, **options):
    """Latency, memory and fidelity of every artifact vs the teacher: eval.json, report.md, report.html.

    Every artifact must match its manifest's sha256 and size (exit 2 otherwise, before anything runs); the
    reports are written in any case, then exit 1 when an artifact could not be loaded or run.

    Fidelity per image and per split: PSNR, SSIM, colour-grade error (CIEDE2000 of low-passed images),
    texture (sliced Wasserstein distance of Laplacian-pyramid patches, detail energy), the gain over doing
    nothing and how many images score below doing nothing. The test split is for reporting only: nothing
    in training or recipe selection reads it.

    \b
    Examples:
      pocketgan eval --artifacts dist/ --out build/eval
      pocketgan eval --artifacts dist/ --split validation,test --out build/eval
      pocketgan eval --artifacts dist/ --size 128 --iterations 10 --data my_photos/
      pocketgan eval --artifacts vintage-mobile --json - > eval.json
      pocketgan eval --artifacts dist/ --resolution 1280 --out build/eval-1280   # full size, 1:1 crops
    """
    folder = resolve_folder(artifacts, artifact_format, artifact_precision)
    resolution, max_side = options.pop("resolution"), options.pop("max_side")
    if resolution is not None:
        return _eval_full_resolution(folder, resolution, max_side, out, no_progress, json_target, options)
    result = evaluate(EvalConfig(artifacts=folder, out=out, progress=not no_progress, **options))
    console.say(Path(result.report_md).read_text(), json_target)
    console.say(f"wrote {result.eval_json}, {result.report_md}, {result.report_html}", json_target)
    for row in result.failed:
        console.say(f"failed: {row['path']}: {row['status'].removeprefix('failed: ')}", json_target)
    console.emit_json(json_target, result.report)
    if result.failed:
        raise _load_failures(result.failed, "artifact", len(result.report["artifacts"]))


def _eval_full_resolution(folder, resolution, max_side, out, no_progress, json_target, options) -> None:
    from pocketgan.evals.fullres import FullResConfig, evaluate_full_resolution, summary_table

    keys = ("teacher", "teacher_weights", "data", "split", "threads")
    config = FullResConfig(
        folder,
        resolution,
        out=out,
        max_side=max_side,
        progress=not no_progress,
        **{k: options[k] for k in keys},
    )
    report = evaluate_full_resolution(config)
    console.say(summary_table(report), json_target)
    console.say(f"wrote {Path(out) / 'eval.json'}, {Path(out) / 'report.html'}", json_target)
    console.emit_json(json_target, report)
    failures = [row for row in report["artifacts"] if str(row["status"]).startswith("failed")]
    if failures:
        raise _load_failures(failures, "artifact", len(report["artifacts"]))


def _load_failures(failed: list[dict], noun: str, total: int) -> CheckFailed:
    """Exit 1, naming the models that could not be loaded or run."""
    names = ", ".join(Path(row.get("model") or row["path"]).name for row in failed)
    return CheckFailed(f"{len(failed)} of {total} {noun}s could not be loaded or run: {names}")


@click.command("parity")
@click.option(
    "--artifacts",
    required=True,
    help="Folder of artifacts with *.manifest.json, or a zoo name / .pt student (exported once, cached).",
)
@click.option(
    "--reference",
    type=click.Choice(["student", "teacher"]),
    default="student",
    show_default=True,
    help="student: the torch model each artifact came from; teacher: the teacher (needs --min-psnr).",
)
@click.option(
    "--min-psnr", type=float, default=None, help="One PSNR floor (dB) instead of the per-precision table."
)
@click.option(
    "--junit", type=click.Path(), default=None, help="Write JUnit XML here (one testcase per artifact)."
)
@click.option(
    "--size",
    type=int,
    default=None,
    help="Check at this size (default: each artifact's own; another size adds resizing and 8-bit rounding, so use --min-psnr with it).",
)
@click.option(
    "--teacher", default=DEFAULT_TEACHER, show_default=True, help="Teacher spec for teacher references."
)
@artifact_options
@console.json_option("the rows")
def parity_command(
    artifacts, reference, min_psnr, junit, size, teacher, artifact_format, artifact_precision, json_target
):
    """CI gate: every artifact vs its reference on the held-out photos. Exit 1 if any falls short.

    An artifact that is missing, or does not match its manifest's sha256 and size, is a failed case.

    \b
    Examples:
      pocketgan parity --artifacts dist/ --junit build/parity.xml
      pocketgan parity --artifacts dist/ --reference teacher --min-psnr 24
    """
    folder = resolve_folder(artifacts, artifact_format, artifact_precision)
    config = ParityConfig(str(folder), reference, min_psnr, junit, size, teacher)
    result = check_parity(config)
    console.say(parity_table(result), json_target)
    console.emit_json(json_target, {"config": config.__dict__, "rows": result.rows, "passed": result.passed})
    if junit:
        console.say(f"wrote {junit}", json_target)
    if not result.passed:
        from pocketgan.export.cli import explain_hint

        names = ", ".join(r["name"] for r in result.failed)
        raise CheckFailed(
            f"parity failed for {len(result.failed)} of {len(result.rows)} artifacts: {names}"
            + explain_hint(r["artifact"] for r in result.failed if r["status"] == "failed")
        )
    skipped = sum(r["status"] == "skipped" for r in result.rows)
    console.say(f"parity: {len(result.rows) - skipped} passed, {skipped} skipped", json_target)
