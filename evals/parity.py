"""`pocketgan parity`: the CI gate. Every artifact vs its reference on the held-out photos, JUnit XML out.

The reference is the torch model the artifact came from (`student`: its source checkpoint, or the teacher
for a teacher export) or the teacher (`teacher`). Thresholds are export/parity.py's table per precision,
or one PSNR floor (`--min-psnr`). Backends that cannot run here give skipped test cases with the reason;
an artifact that is missing or does not match its manifest (sha256, size_bytes) is a failed case.

Example: pocketgan parity --artifacts dist/ --junit build/parity.xml
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.config import DEFAULT_TEACHER
from pocketgan.data import heldout_images
from pocketgan.errors import IntegrityError, UsageError
from pocketgan.evals.common import (
    artifact_format,
    find_artifacts,
    load_source_student,
    manifest_size,
    run_artifact,
    torch_outputs,
)
from pocketgan.export.parity import THRESHOLDS
from pocketgan.manifest import atomic_write_bytes, read_manifest, verify_artifact
from pocketgan.metrics import judge

log = logging.getLogger(__name__)

REFERENCES = ("student", "teacher")


@dataclass(frozen=True)
class ParityConfig:
    artifacts: str
    reference: str = "student"
    min_psnr: float | None = None
    junit: str | None = None
    size: int | None = None  # default: each artifact's own input size
    teacher: str = DEFAULT_TEACHER
    threads: int = 2

    def __post_init__(self):
        if self.reference not in REFERENCES:
            raise UsageError(f"--reference must be one of {', '.join(REFERENCES)}, got {self.reference!r}")
        if self.size is not None and self.size < 16:
            raise UsageError(f"--size must be at least 16, got {self.size}")


@dataclass
class ParityResult:
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] in ("failed", "error")]

    @property
    def passed(self) -> bool:
        return not self.failed


class _References:
    """Reference outputs on the held-out images, per (model, size), computed once."""

    def __init__(self, config: ParityConfig):
        self.config = config
        self.cache: dict[tuple[str, int], tuple[list[str], list[np.ndarray], list[np.ndarray]] | str] = {}
        self.teachers: dict[str, Any] = {}

    def outputs(self, manifest: dict[str, Any] | None, artifact: Path, size: int):
        """(names, input images uint8, reference outputs float HxWx3) or a reason string."""
        source = (manifest or {}).get("source") or {}
        exported_teacher = source.get("kind") == "teacher"
        use_teacher = self.config.reference == "teacher" or exported_teacher
        # A teacher export is checked against the spec it was exported from, not --teacher.
        teacher = (source.get("spec") if exported_teacher else None) or self.config.teacher
        source_key = (
            f"teacher:{teacher}" if use_teacher else str(source.get("checkpoint") or source.get("spec"))
        )
        key = (source_key, size)
        if key not in self.cache:
            named = heldout_images(size)
            images = [image for _, image in named]
            if use_teacher:
                model = self._teacher(teacher)
            else:
                model, reason = load_source_student(manifest, artifact)
                if model is None:
                    self.cache[key] = reason.reason
                    return self.cache[key]
            self.cache[key] = ([n for n, _ in named], images, torch_outputs(model, images))
        return self.cache[key]

    def _teacher(self, spec: str):
        if spec not in self.teachers:
            from pocketgan.models.teacher import load_teacher  # imports torch

            self.teachers[spec] = load_teacher(spec)
        return self.teachers[spec]


def _judge(outputs, references, precision: str, min_psnr: float | None) -> dict[str, Any]:
    """Per-image judgement (pocketgan.metrics.judge); the artifact passes only if every image passes."""
    if min_psnr is not None:
        rule = ("psnr_db", min_psnr)
    elif precision in THRESHOLDS:
        rule = THRESHOLDS[precision]
    else:
        raise UsageError(f"no parity threshold for precision {precision!r}; pass --min-psnr")
    per_image = [judge(out, ref, *rule) for out, ref in zip(outputs, references, strict=True)]
    return {
        "psnr_db": _worst(min, [r["psnr_db"] for r in per_image]),
        "max_abs": _worst(max, [r["max_abs"] for r in per_image]),
        "passed": all(r["passed"] for r in per_image),
        "threshold": per_image[0]["threshold"],
        "per_image": per_image,
    }


def _worst(pick, values: list[float | None]) -> float | None:
    measured = [v for v in values if v is not None]
    return pick(measured) if measured else None


def check_artifact(path: Path, config: ParityConfig, references: _References) -> dict[str, Any]:
    """One gate row: status passed | failed | skipped (backend unavailable) | error (cannot check).

    An artifact that is missing, or does not match its manifest's sha256 and size, fails before it is run.
    """
    start = time.perf_counter()
    manifest = read_manifest(path)
    precision = str((manifest or {}).get("precision") or "fp32")
    row: dict[str, Any] = {
        "artifact": str(path),
        "name": path.name,
        "format": artifact_format(path, manifest),
    }
    source_kind = ((manifest or {}).get("source") or {}).get("kind", "student")
    reference_name = "teacher" if config.reference == "teacher" or source_kind == "teacher" else "student"
    row.update({"precision": precision, "backend": None, "reference": reference_name, "psnr_db": None})
    row.update({"max_abs": None, "threshold": None, "per_image": None, "message": ""})
    try:
        verify_artifact(path, manifest, required=True)
    except IntegrityError as exc:
        row.update(status="failed", message=str(exc), time_s=time.perf_counter() - start)
        return row
    size = config.size or manifest_size(manifest)
    if size is None:
        row.update(status="error", message="the manifest has no input shape; pass --size")
        return row
    reference = references.outputs(manifest, path, size)
    if isinstance(reference, str):
        row.update(status="error", message=f"no reference: {reference}")
        return row
    names, images, expected = reference
    run = run_artifact(path, images, threads=config.threads, verify=False)
    row["backend"] = run.backend
    if run.status.is_unavailable:
        row.update(status="skipped", message=run.status.reason)
    elif not run.status.is_ok:
        row.update(status="error", message=str(run.status))
    else:
        try:
            verdict = _judge(run.outputs, expected, precision, config.min_psnr)
        except UsageError as exc:
            row.update(status="error", message=str(exc), time_s=time.perf_counter() - start)
            return row
        row.update(verdict, status="passed" if verdict["passed"] else "failed")
        row["message"] = (
            f"{path.name} ({precision}, {run.backend}) vs {reference_name} on {', '.join(names)}: "
            f"worst PSNR {_text(verdict['psnr_db'], '.2f')} dB, max_abs {_text(verdict['max_abs'], '.3g')}; "
            f"needs {verdict['threshold']}"
        )
        if run.first_nonfinite_op:
            row["first_nonfinite_op"] = run.first_nonfinite_op
            row["message"] += f"; first non-finite op: {run.first_nonfinite_op}"
        errors = sorted({r["error"] for r in verdict["per_image"] if r.get("error")})
        row["message"] += "".join(f"; {error}" for error in errors)
    row["time_s"] = time.perf_counter() - start
    return row


def _text(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else str(value if value is not None else "-")


def check_parity(config: ParityConfig) -> ParityResult:
    """Check every artifact under config.artifacts; write JUnit XML when config.junit is set."""
    paths = find_artifacts(config.artifacts)
    if config.reference == "teacher" and config.min_psnr is None:
        raise UsageError("--reference teacher judges students against their teacher: give --min-psnr DB too")
    references = _References(config)
    result = ParityResult([check_artifact(path, config, references) for path in paths])
    if config.junit:
        atomic_write_bytes(config.junit, junit_xml(result))
    return result


def junit_xml(result: ParityResult, suite: str = "pocketgan.parity") -> bytes:
    """One <testcase> per artifact: <failure> with the numbers, <skipped> with the reason, <error>."""
    counts = {s: sum(r["status"] == s for r in result.rows) for s in ("failed", "skipped", "error")}
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(result.rows)),
        failures=str(counts["failed"]),
        errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
        time=f"{sum(r.get('time_s', 0.0) for r in result.rows):.3f}",
    )
    for row in result.rows:
        case = ET.SubElement(
            root, "testcase", classname=suite, name=row["name"], time=f"{row.get('time_s', 0.0):.3f}"
        )
        tag = {"failed": "failure", "skipped": "skipped", "error": "error"}.get(row["status"])
        if tag:
            ET.SubElement(case, tag, message=row["message"]).text = row["message"]
        else:
            ET.SubElement(case, "system-out").text = row["message"]
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def format_table(result: ParityResult) -> str:
    header = ["artifact", "precision", "backend", "worst PSNR dB", "max_abs", "threshold", "result"]
    lines = [header]
    for r in result.rows:
        psnr_text, abs_text = _text(r["psnr_db"], ".2f"), _text(r["max_abs"], ".3g")
        judged = r["status"] == "passed" or (r["status"] == "failed" and r["psnr_db"] is not None)
        verdict = r["status"] if judged else f"{r['status']}: {r['message']}"  # no numbers: say why
        lines.append(
            [
                r["name"],
                r["precision"],
                r["backend"] or "-",
                psnr_text,
                abs_text,
                r["threshold"] or "-",
                verdict,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip() for line in lines)
