"""The eval.json contract of ARCHITECTURE.md as data, and a checker that names every missing key (torch-free).

Example: python -c "import json; from evals.schema import missing_keys; print(missing_keys(json.load(open('build/eval/eval.json'))))"
"""

from __future__ import annotations

from typing import Any

from pocketgan.status import Status

# key -> nested keys (dict) or None (a leaf). "artifacts" holds a list of rows with ARTIFACT_KEYS each.
TOP_KEYS: dict[str, Any] = {
    "size": None,
    "images": None,
    "identity_baseline_psnr_db": None,
    "identity_baseline": {"grade_de2000": None, "texture_swd": None, "splits": None},
    "mac_method": None,
    "teacher": {"params": None, "macs": None, "latency_ms": {"p50": None, "p90": None, "p99": None}},
    "artifacts": None,
}
ARTIFACT_KEYS: dict[str, Any] = {
    "path": None,
    "format": None,
    "precision": None,
    "student": None,
    "backend": None,
    "threads": None,
    "size_bytes": None,
    "macs": None,
    "latency_ms": {"p50": None, "p90": None, "p99": None, "load": None},
    "peak_rss_mb": None,
    "fidelity_vs_teacher": {
        "psnr_db": None,
        "ssim": None,
        "grade_de2000": None,
        "texture_swd": None,
        "below_baseline": None,
        "splits": None,
    },
    "fidelity_vs_student": {"psnr_db": None},
    "status": None,
}


def _missing(obj: Any, spec: dict[str, Any], prefix: str) -> list[str]:
    if not isinstance(obj, dict):
        return [prefix.rstrip(".") or "<root>"]
    missing = []
    for key, sub in spec.items():
        if key not in obj:
            missing.append(prefix + key)
        elif sub is not None:
            missing += _missing(obj[key], sub, f"{prefix}{key}.")
    return missing


def missing_keys(report: dict[str, Any]) -> list[str]:
    """Dotted names of every contract key absent from an eval.json dict (empty when it is complete)."""
    missing = _missing(report, TOP_KEYS, "")
    rows = report.get("artifacts") if isinstance(report, dict) else None
    if not isinstance(rows, list):
        return missing + (["artifacts (not a list)"] if "artifacts" not in missing else [])
    for i, row in enumerate(rows):
        missing += _missing(row, ARTIFACT_KEYS, f"artifacts[{i}].")
        status = row.get("status") if isinstance(row, dict) else None
        if isinstance(status, str) and Status.parse(status) is None:
            missing.append(f"artifacts[{i}].status (not ok / unavailable: / failed:)")
    return missing
