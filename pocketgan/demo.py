"""`pocketgan demo`: the whole pipeline on the embedded default teacher, resumable stage by stage.

Stages: distill a live "quick" student from the `vintage` teacher -> export the shipped full-recipe student
to every format in fp32, fp16, int8 (and Core ML p6), the live student to ONNX/TFLite fp32/int8 and the
teacher to ONNX fp32 -> parity gate -> eval (eval.json, report.md, report.html) -> a five-line summary. A
finished stage leaves a marker in OUT/.stages and is skipped on the next run unless `--fresh`; the
teacher-output cache lives in OUT/teacher-cache and is reused likewise.

Example: pocketgan demo --out build/demo
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from pocketgan.config import DEFAULT_TEACHER
from pocketgan.distill.config import resolve_config
from pocketgan.distill.trainer import distill
from pocketgan.errors import ModelLoadError, UsageError
from pocketgan.evals.evaluate import EvalConfig, evaluate
from pocketgan.evals.parity import ParityConfig, check_parity, format_table, junit_xml
from pocketgan.export import ExportConfig, export, registered_exporters
from pocketgan.manifest import atomic_write_json

SHIPPED_STUDENT = Path(__file__).with_name("zoo") / "vintage-mobile" / "student.pt"
# The shipped student goes to every format in these precisions; w8 and int8-full (`pocketgan export
# --precision all`) are left out of the demo to keep it within 10 minutes on 2 cores.
SHIPPED_PRECISIONS = ("fp32", "fp16", "int8", "p6")
# The live student and the teacher go to the formats whose CPU runtimes eval times here.
QUICK_FORMATS = ("onnx", "tflite")
TEACHER_FORMATS = ("onnx",)


@dataclass(frozen=True)
class DemoConfig:
    out: str = "build/demo"
    fresh: bool = False
    size: int = 256
    shipped_student: str = str(SHIPPED_STUDENT)
    quick_steps: int | None = None  # None: the quick preset's own
    quick_size: int | None = None
    threads: int = 2
    iterations: int = 20
    teacher_iterations: int = 3
    progress: bool = True

    def __post_init__(self):
        if self.size < 16 or self.size % 8:
            raise UsageError(f"--size must be a multiple of 8 and at least 16, got {self.size}")
        if self.iterations < 1 or self.threads < 1:
            raise UsageError("--iterations and --threads must be positive")


@dataclass
class DemoResult:
    out: Path
    eval_json: Path
    report_html: Path
    summary: list[str]
    parity_passed: bool
    stage_seconds: dict[str, float]


class _Stages:
    """Runs named stages once; each finished stage's JSON-able result is kept in OUT/.stages/NAME.json."""

    def __init__(self, out: Path, fresh: bool, progress):
        self.dir = out / ".stages"
        self.progress = progress
        self.seconds: dict[str, float] = {}
        if fresh and out.exists():
            shutil.rmtree(out)
        self.dir.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, function) -> Any:
        marker = self.dir / f"{name}.json"
        self.progress.set_description(f"demo: {name}")
        if marker.exists():
            self.progress.update(1)
            self.seconds[name] = 0.0
            return json.loads(marker.read_text())["result"]
        start = time.perf_counter()
        result = function()
        self.seconds[name] = time.perf_counter() - start
        atomic_write_json(marker, {"result": result, "seconds": self.seconds[name]})
        self.progress.update(1)
        return result


def demo(config: DemoConfig) -> DemoResult:
    """Run every stage (skipping finished ones) and return the summary."""
    from tqdm import tqdm

    out = Path(config.out)
    if not Path(config.shipped_student).is_file():
        raise ModelLoadError(
            f"shipped student {config.shipped_student} is missing; `make student` rebuilds it"
        )
    artifacts = out / "artifacts"
    with tqdm(total=6, unit="stage", disable=not config.progress, position=0) as bar:
        stages = _Stages(out, config.fresh, bar)
        quick = stages.run("distill-quick", lambda: _distill_quick(config, out))
        stages.run(
            "export-shipped",
            lambda: _export(
                config.shipped_student,
                artifacts,
                "shipped",
                SHIPPED_PRECISIONS,
                config,
                tuple(registered_exporters()),
            ),
        )
        stages.run(
            "export-quick",
            lambda: _export(quick, artifacts, "quick", ("fp32", "int8"), config, QUICK_FORMATS),
        )
        stages.run(
            "export-teacher",
            lambda: _export(DEFAULT_TEACHER, artifacts, "teacher", ("fp32",), config, TEACHER_FORMATS),
        )
        parity = stages.run("parity", lambda: _parity(artifacts, out, config))
        report = stages.run("eval", lambda: _eval(artifacts, out, config))
    summary = summarize(report, out)
    return DemoResult(out, out / "eval.json", out / "report.html", summary, parity["passed"], stages.seconds)


def _distill_quick(config: DemoConfig, out: Path) -> str:
    run_dir = out / "quick-run"
    distill_config = resolve_config(
        preset="quick",
        out=str(run_dir),
        steps=config.quick_steps,
        size=config.quick_size,
        size_schedule=() if config.quick_size else None,  # a size given: train at it only
        cache_dir=str(out / "teacher-cache"),
        progress=config.progress,
    )
    result = distill(distill_config, resume=(run_dir / "last.pt").exists())
    best = result.best_checkpoint or run_dir / "best.pt"
    return str(best)


def _export(source: str, artifacts: Path, name: str, precisions, config: DemoConfig, formats) -> dict:
    result = export(
        source,
        # Parity at the demo size only: the full-resolution sizes (1920x1080) and TFLite's one artifact per
        # size would multiply the demo's export time.
        ExportConfig(
            formats=formats,
            precisions=precisions,
            size=config.size,
            sizes=((config.size, config.size),),
            out=str(artifacts),
            name=name,
        ),
    )
    return {
        "artifacts": [
            {
                "path": str(a.path) if a.path else None,
                "format": a.format,
                "precision": a.precision,
                "status": a.status,
            }
            for a in result.artifacts
        ],
        "seconds": result.seconds,
    }


def _parity(artifacts: Path, out: Path, config: DemoConfig) -> dict:
    result = check_parity(ParityConfig(artifacts=str(artifacts), reference="student", threads=config.threads))
    (out / "parity.xml").write_bytes(junit_xml(result))
    (out / "parity.txt").write_text(format_table(result) + "\n")
    return {"passed": result.passed, "failed": [row.get("name", row.get("path")) for row in result.failed]}


def _eval(artifacts: Path, out: Path, config: DemoConfig) -> dict:
    result = evaluate(
        EvalConfig(
            artifacts=str(artifacts),
            size=config.size,
            out=str(out),
            threads=config.threads,
            iterations=config.iterations,
            teacher_iterations=config.teacher_iterations,
            progress=config.progress,
        )
    )
    return result.report


def _label(row: dict) -> str:
    return Path(row["path"]).name + (f" [{row['backend']}]" if row.get("backend") else "")


def summarize(report: dict, out: Path) -> list[str]:
    """Five lines: best artifact, its speed-up and PSNR vs the teacher, sizes, the report path."""
    ok = [
        r
        for r in report["artifacts"]
        if r.get("status") == "ok"
        and r.get("student") != "teacher"
        and isinstance((r.get("latency_ms") or {}).get("p50"), int | float)
    ]
    teacher_p50 = report["teacher"]["latency_ms"]["p50"]
    baseline = report["identity_baseline_psnr_db"]
    if not ok:
        return ["no artifact ran here", "", "", "", f"report: {out / 'report.html'}"]
    # Best = the fastest artifact among those within 0.5 dB of the most faithful one.
    top_psnr = max(r["fidelity_vs_teacher"].get("psnr_db") or 0.0 for r in ok)
    near_top = [r for r in ok if (r["fidelity_vs_teacher"].get("psnr_db") or 0.0) >= top_psnr - 0.5]
    best = min(near_top, key=lambda r: r["latency_ms"]["p50"])
    prefix = Path(best["path"]).name.split(".")[0] + "."
    family = [r for r in ok if Path(r["path"]).name.startswith(prefix)]
    sizes = sorted({(Path(r["path"]).name, r["size_bytes"]) for r in family}, key=lambda kv: kv[1])
    size_text = ", ".join(f"{name} {size / 1024:.0f} KiB" for name, size in sizes)
    return [
        f"best artifact: {_label(best)} (p50 {best['latency_ms']['p50']:.2f} ms at {report['size']}px)",
        f"speed-up over the teacher in torch: {teacher_p50 / best['latency_ms']['p50']:.0f}x "
        f"(teacher p50 {teacher_p50:.0f} ms, {report['teacher']['macs'] / 1e9:.1f} GMACs vs {best['macs'] / 1e9:.2f})",
        f"PSNR vs teacher: {best['fidelity_vs_teacher']['psnr_db']:.2f} dB, SSIM {best['fidelity_vs_teacher']['ssim']:.3f} "
        f"(do-nothing baseline {baseline:.2f} dB)",
        f"artifact sizes: {size_text}",
        f"report: {out / 'report.html'}",
    ]


@click.command("demo")
@click.option("--out", default="build/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--fresh", is_flag=True, help="Start over: delete OUT (stages and teacher cache) first.")
@click.option("--size", default=256, show_default=True, help="Export and eval resolution.")
@click.option(
    "--student",
    "shipped_student",
    default=str(SHIPPED_STUDENT),
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The full-recipe student checkpoint to show beside the live one.",
)
@click.option("--quick-steps", type=int, default=None, help="Override the quick preset's step count.")
@click.option("--quick-size", type=int, default=None, help="Train the quick student at this size only.")
@click.option("--iterations", default=20, show_default=True, help="Timed iterations per artifact.")
@click.option("--threads", default=2, show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bars (CI logs).")
def demo_command(
    out, fresh, size, shipped_student, quick_steps, quick_size, iterations, threads, no_progress
):
    """The whole pipeline on the embedded default teacher, with a report.

    Distills a live quick student from the `vintage` teacher, exports the shipped full-recipe student
    to ONNX / TFLite / Core ML / ExecuTorch in fp32, fp16 and int8 (Core ML: 6-bit p6 instead) and the live
    one to ONNX / TFLite, checks parity, evaluates everything against the teacher on the test photos and
    writes OUT/eval.json and OUT/report.html (~9 minutes on 2 CPU cores). A second run reuses finished
    stages unless --fresh.

    \b
    Example:
      pocketgan demo --out build/demo
    """
    config = DemoConfig(
        out=out,
        fresh=fresh,
        size=size,
        shipped_student=shipped_student,
        quick_steps=quick_steps,
        quick_size=quick_size,
        iterations=iterations,
        threads=threads,
        progress=not no_progress,
    )
    result = demo(config)
    click.echo("")
    for line in result.summary:
        click.echo(line)
    if not result.parity_passed:
        click.echo(f"parity: some artifacts fell short, see {result.out / 'parity.txt'}", err=True)
    (Path(out) / "demo.json").write_text(
        json.dumps(
            {"config": asdict(config), "summary": result.summary, "stage_seconds": result.stage_seconds},
            indent=2,
        )
    )
