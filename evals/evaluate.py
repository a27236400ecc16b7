"""`pocketgan eval`: latency, memory and fidelity of every artifact against the teacher, as JSON and reports.

Writes OUT/eval.json (every key of the ARCHITECTURE.md contract), OUT/report.md and a self-contained
OUT/report.html. Artifacts whose backend cannot run here are listed with `status: "unavailable: <why>"`,
artifacts that could not be loaded or run with `status: "failed: <why>"` (the CLI then exits 1). Every
artifact must match its manifest (sha256, size_bytes) before anything runs: IntegrityError otherwise.

Example: pocketgan eval --artifacts dist/ --size 128 --out build/eval --iterations 10
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.config import DEFAULT_TEACHER
from pocketgan.errors import UsageError
from pocketgan.evals.bench import BenchConfig, bench_one
from pocketgan.evals.common import (
    artifact_format,
    eval_images,
    find_artifacts,
    image_splits,
    load_source_student,
    manifest_size,
    run_artifact,
    torch_outputs,
)
from pocketgan.evals.report import write_reports
from pocketgan.evals.splits import split_fidelity
from pocketgan.images import to_float
from pocketgan.manifest import atomic_write_json, library_versions, now_iso, size_bytes, verify_artifacts
from pocketgan.metrics import UNAVAILABLE_WEIGHTS, compare_images, frechet_distance, lpips_distance
from pocketgan.runtime.base import backend_status, backends_for
from pocketgan.status import OK, Status

log = logging.getLogger(__name__)

EVAL_VERSIONS = ("torch", "onnxruntime", "ai-edge-litert", "coremltools", "scikit-image", "numpy")


@dataclass(frozen=True)
class EvalConfig:
    artifacts: str
    teacher: str = DEFAULT_TEACHER
    teacher_weights: str | None = None
    data: str | None = None
    split: str = "test"
    size: int = 256
    out: str = "build/eval"
    threads: int = 2
    warmup: int = 3
    iterations: int = 20
    teacher_iterations: int = 3
    lpips_model: str | None = None
    fid_model: str | None = None
    progress: bool = True
    video: bool = True  # the video section (evals/video.py): flicker vs the teacher, fps, animated preview

    def __post_init__(self):
        if self.size < 16:
            raise UsageError(f"--size must be at least 16, got {self.size}")
        if self.threads < 1 or self.iterations < 1 or self.teacher_iterations < 1 or self.warmup < 0:
            raise UsageError("--threads, --iterations and teacher iterations must be positive, warmup >= 0")
        from pocketgan.data.photos import SPLITS

        unknown = [s for s in self.split.split(",") if s.strip() not in SPLITS or s.strip() == "train"]
        if unknown:
            raise UsageError(f"--split takes validation and/or test (comma-separated), got {self.split!r}")
        for name in ("lpips_model", "fid_model"):
            value = getattr(self, name)
            if value and not Path(value).is_file():
                raise UsageError(f"--{name.replace('_', '-')} {value}: no such file")


@dataclass
class EvalResult:
    report: dict[str, Any]
    out: Path
    eval_json: Path
    report_md: Path
    report_html: Path
    pictures: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Artifact rows that could not be loaded or run (an unavailable backend is not a failure)."""
        return [
            row
            for row in self.report["artifacts"]
            if (status := Status.parse(row["status"])) and status.is_failed
        ]


def _timed(function, iterations: int) -> dict[str, float]:
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "iterations": iterations}


def _teacher_section(config: EvalConfig, images: list[np.ndarray]):
    """Teacher outputs, params/MACs and torch latency (batch 1, fixed threads)."""
    import torch

    from pocketgan.flops import MAC_METHOD, model_cost  # imports torch
    from pocketgan.models.teacher import load_teacher  # imports torch

    torch.set_num_threads(config.threads)
    teacher = load_teacher(config.teacher, config.teacher_weights)
    outputs = torch_outputs(teacher, images)
    section: dict[str, Any] = {"spec": config.teacher, "backend": "torch", "threads": config.threads}
    if teacher.module is not None:
        section.update(model_cost(teacher.module, config.size))
    else:
        reason = "unavailable: an ONNX teacher is a black box (no torch module to count)"
        section.update({"params": reason, "macs": reason})
    x = torch.from_numpy(to_float(images[0]).transpose(2, 0, 1)[None].copy())
    section["latency_ms"] = _timed(lambda: teacher(x), config.teacher_iterations)
    section["mac_method"] = MAC_METHOD
    return teacher, outputs, section


class _SourceModels:
    """Torch students by checkpoint, loaded once, with outputs and cost per size."""

    def __init__(self, images: list[np.ndarray]):
        self.images = images
        self.cache: dict[str, tuple[Any, str, list | None]] = {}
        self.costs: dict[tuple[str, int], dict[str, int]] = {}

    def get(self, manifest, artifact: Path):
        key = str(((manifest or {}).get("source") or {}).get("checkpoint"))
        if key not in self.cache:
            model, description = load_source_student(manifest, artifact)
            outputs = torch_outputs(model, self.images) if model is not None else None
            self.cache[key] = (model, description, outputs)
        return self.cache[key]

    def cost(self, key: str, model, size: int) -> dict[str, int]:
        from pocketgan.flops import model_cost  # imports torch

        if (key, size) not in self.costs:
            self.costs[(key, size)] = model_cost(model, size)
        return self.costs[(key, size)]


def _empty_row(path: Path, manifest: dict | None, threads: int) -> dict[str, Any]:
    source = (manifest or {}).get("source") or {}
    kind = source.get("kind", "student")
    return {
        "path": str(path),
        "name": path.name,
        "format": artifact_format(path, manifest),
        "precision": (manifest or {}).get("precision"),
        "student": "teacher" if kind == "teacher" else source.get("student"),
        "source_kind": kind,
        "backend": None,
        "threads": threads,
        "size_bytes": size_bytes(path) if path.exists() else (manifest or {}).get("size_bytes"),
        "input_size": None,
        "params": None,
        "macs": None,
        "latency_ms": {"p50": None, "p90": None, "p99": None, "load": None},
        "first_run_ms": None,
        "peak_rss_mb": None,
        "fidelity_vs_teacher": dict.fromkeys(
            ("psnr_db", "ssim", "grade_de2000", "texture_swd", "below_baseline", "splits")
        ),
        "fidelity_vs_student": {"psnr_db": None},
        "lpips_vs_teacher": None,
        "fid_vs_teacher": None,
        "manifest_parity": (manifest or {}).get("parity"),
        "status": OK,
        "notes": [],
    }


def _evaluate_artifact(
    path, config, images, names, teacher, teacher_outputs, sources, split_of, baseline
) -> tuple[dict, list | None]:
    """One eval.json artifact row, and the artifact's outputs (None when it could not run)."""
    run = run_artifact(path, images, threads=config.threads, verify=False)  # evaluate() verified it
    row = _empty_row(Path(path), run.manifest, config.threads)
    row["backend"], row["status"] = run.backend, run.status
    size = run.size[0] if run.size else None
    row["input_size"] = size or manifest_size(run.manifest)
    if row["source_kind"] == "teacher":
        model, description, source_outputs = teacher.module, f"teacher {config.teacher}", teacher_outputs
    else:
        model, description, source_outputs = sources.get(run.manifest, Path(path))
    row["fidelity_vs_student"]["reference"] = description
    if model is None:
        row["notes"].append(f"fidelity vs student {description}")
    if model is not None and row["input_size"]:
        row.update(sources.cost(description, model, row["input_size"]))
    if not run.status.is_ok:
        return row, None
    row["fidelity_vs_teacher"] = split_fidelity(run.outputs, teacher_outputs, names, split_of, baseline)
    if source_outputs is not None:
        row["fidelity_vs_student"] = {
            "reference": description,
            **compare_images(run.outputs, source_outputs, names),
        }
    row["lpips_vs_teacher"] = lpips_distance(config.lpips_model, run.outputs, teacher_outputs)
    row["fid_vs_teacher"] = frechet_distance(config.fid_model, run.outputs, teacher_outputs)
    if size and size != config.size:
        row["notes"].append(f"artifact runs at {size}px; images resized to it and back to {config.size}px")
    # A teacher artifact runs ~100x slower than a student: timed as often as the teacher in torch.
    iterations = config.teacher_iterations if row["source_kind"] == "teacher" else config.iterations
    timing = bench_one(
        path,
        BenchConfig(config.threads, config.warmup, iterations, backend=run.backend, every_percentile=True),
    )
    if timing.get("status") != "ok":
        row["notes"].append(f"bench: {timing.get('status')}")
    else:
        latency = timing["latency_ms"]
        row["latency_ms"] = {k: latency[k] for k in ("p50", "p90", "p99", "mean")} | {
            "load": timing["load_ms"]
        }
        row["first_run_ms"], row["peak_rss_mb"] = timing["first_run_ms"], timing["peak_rss_mb"]
        if timing.get("note"):
            row["notes"].append(timing["note"])
    return row, run.outputs


def evaluate(config: EvalConfig) -> EvalResult:
    """Run every artifact under config.artifacts on the eval images; write eval.json and the reports."""
    from tqdm import tqdm

    from pocketgan.flops import MAC_METHOD  # imports torch

    artifact_paths = find_artifacts(config.artifacts)
    verify_artifacts([path for path in artifact_paths if path.exists()], required=True)  # missing: a row
    named = eval_images(config.size, config.data, config.split)
    names = [name for name, _ in named]
    split_of = image_splits(names, config.data, config.split)
    images = [image for _, image in named]
    inputs = [to_float(image) for image in images]
    teacher, teacher_outputs, teacher_section = _teacher_section(config, images)
    baseline = split_fidelity(inputs, teacher_outputs, names, split_of)  # what doing nothing scores
    sources = _SourceModels(images)
    artifact_pictures: dict[str, list[np.ndarray]] = {}
    rows = []
    for path in tqdm(artifact_paths, desc="eval", unit="artifact", disable=not config.progress):
        row, outputs = _evaluate_artifact(
            path, config, images, names, teacher, teacher_outputs, sources, split_of, baseline
        )
        rows.append(row)
        rows += _other_backend_rows(row)
        if outputs is not None:
            artifact_pictures[row["name"]] = outputs
    pictures: dict[str, list[np.ndarray]] = {"input": inputs, "teacher": teacher_outputs}
    scores = {"input": baseline}
    students = {}
    for model, description, outputs in sources.cache.values():
        if model is not None:
            checkpoint = Path(description)
            label = f"torch student ({checkpoint.parent.name}/{checkpoint.name})"
            pictures[label] = outputs
            fidelity = split_fidelity(outputs, teacher_outputs, names, split_of, baseline)
            students[description] = {"fidelity_vs_teacher": fidelity}
            scores[label] = fidelity
            students[description].update(sources.cost(description, model, config.size))
    pictures.update(artifact_pictures)
    scores.update({r["name"]: r["fidelity_vs_teacher"] for r in rows if r["name"] in artifact_pictures})
    teacher_section["latency_ms_onnxruntime"] = _teacher_onnx_latency(rows)
    video, preview = _video(config, teacher, rows)
    report = {
        "size": config.size,
        "images": names,
        "data": config.data or f"embedded photo set, split {config.split} (pocketgan/data/photos.toml)",
        "split_of": split_of,
        "identity_baseline_psnr_db": baseline["psnr_db"],
        "identity_baseline": baseline,
        "mac_method": MAC_METHOD,
        "teacher": teacher_section,
        "students": students,
        "artifacts": rows,
        "lpips": f"from {config.lpips_model}" if config.lpips_model else UNAVAILABLE_WEIGHTS,
        "fid": f"from {config.fid_model}" if config.fid_model else UNAVAILABLE_WEIGHTS,
        "threads": config.threads,
        "iterations": config.iterations,
        "warmup": config.warmup,
        "video": video,
        "versions": library_versions(EVAL_VERSIONS),
        "created": now_iso(),
    }
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "eval.json", report)
    report_md, report_html = write_reports(report, pictures, out, scores, preview)
    return EvalResult(report, out, out / "eval.json", report_md, report_html, pictures)


def _video(
    config: EvalConfig, teacher, rows: list[dict[str, Any]]
) -> tuple[dict[str, Any] | str, bytes | None]:
    """The video section over the student artifacts that ran (evals/video.py), or why there is none."""
    if not config.video:
        return "skipped (--no-video)", None
    from pocketgan.evals.video import video_section

    students = [
        Path(r["path"]) for r in rows if r["source_kind"] != "teacher" and Status.parse(r["status"]).is_ok
    ]
    if not students:
        return "unavailable: no student artifact ran", None
    key = f"{config.teacher}|{config.teacher_weights}"
    return video_section(teacher, key, list(dict.fromkeys(students)), config.threads, config.size)


def _other_backend_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the other backends that take this artifact but cannot run here (e.g. Core ML off macOS)."""
    if not row["status"].is_ok:
        return []  # the artifact's own row already gives every backend's reason
    extra = []
    for backend in backends_for(row["path"]):
        status = backend_status(backend)
        if backend.name != row["backend"] and not status.is_ok:
            unmeasured = _empty_row(Path(row["path"]), None, row["threads"])
            unmeasured.update(
                {k: row[k] for k in ("format", "precision", "student", "source_kind", "params", "macs")}
            )
            unmeasured.update(
                backend=backend.name, input_size=row["input_size"], manifest_parity=row["manifest_parity"]
            )
            unmeasured["status"] = status
            extra.append(unmeasured)
    return extra


def _teacher_onnx_latency(rows: list[dict[str, Any]]) -> dict[str, Any] | str:
    """The teacher's latency in onnxruntime, from its ONNX artifact (fp32 preferred) when one was evaluated."""
    candidates = [
        r for r in rows if r["source_kind"] == "teacher" and r["format"] == "onnx" and r["status"].is_ok
    ]
    candidates.sort(key=lambda r: r["precision"] != "fp32")
    if not candidates or candidates[0]["latency_ms"]["p50"] is None:
        return "unavailable: no runnable teacher ONNX artifact in the artifacts folder (pocketgan export vintage)"
    return {"artifact": candidates[0]["path"], **candidates[0]["latency_ms"]}
