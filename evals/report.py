"""report.md and a self-contained report.html (Jinja2 template, base64 PNG images and matplotlib charts).

Example: python -c "import json; from evals.report import render_markdown; print(render_markdown(json.load(open('build/eval/eval.json'))))"
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.images import to_uint8
from pocketgan.manifest import atomic_write_bytes
from pocketgan.metrics import psnr

CHART_PSNR_MAX_DB = 60.0  # charts clip PSNR here (a teacher export scores >100 dB against its teacher)
DIFF_GAIN = 8.0
# |output - teacher| on [-1, 1] floats, times DIFF_GAIN, shown on a 0..1 colour scale
GRID_IMAGES = 16  # the HTML shows the first images only (the test split has 13); the numbers cover all
NO_DIFF_COLUMNS = ("teacher",)


def png_base64(image: np.ndarray, format: str = "PNG") -> str:
    """Base64 of the image encoded as PNG (or "JPEG" at quality 92, for the many-image grid)."""
    from PIL import Image

    buffer = io.BytesIO()
    options = {"optimize": True} if format == "PNG" else {"quality": 92}
    Image.fromarray(image).save(buffer, format=format, **options)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def difference_map(output: np.ndarray, reference: np.ndarray, gain: float = DIFF_GAIN) -> np.ndarray:
    """Amplified mean-abs difference as a uint8 'magma' heat map."""
    from matplotlib import colormaps

    diff = np.clip(np.abs(output - reference).mean(axis=-1) * gain / 2.0, 0.0, 1.0)
    return (colormaps["magma"](diff)[..., :3] * 255).astype(np.uint8)


def _fmt(value: Any, spec: str = ".2f", unit: str = "") -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:{spec}}{unit}"
    return "—" if value is None else str(value)


def _figure_png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def charts(report: dict[str, Any]) -> dict[str, str]:
    """Base64 PNG charts: latency, size and PSNR vs teacher per artifact; speed/quality scatter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["artifacts"] if r["status"] == "ok"]
    names = [r["name"] for r in rows]
    p50 = [r["latency_ms"]["p50"] or 0.0 for r in rows]
    p90 = [r["latency_ms"]["p90"] or 0.0 for r in rows]
    psnr = [min(r["fidelity_vs_teacher"]["psnr_db"], CHART_PSNR_MAX_DB) for r in rows]
    baseline = report["identity_baseline_psnr_db"]
    teacher = report["teacher"]["latency_ms"]
    height = max(2.0, 0.45 * len(rows) + 1.6)
    out = {}

    figure, axes = plt.subplots(1, 3, figsize=(15, height))
    latency_names, latency_p50, latency_p90 = (
        ["teacher (torch)", *names],
        [teacher["p50"], *p50],
        [teacher["p90"], *p90],
    )
    axes[0].barh(latency_names, latency_p50, color=["#8C8C8C"] + ["#4C72B0"] * len(rows))
    axes[0].errorbar(
        latency_p50,
        latency_names,
        xerr=[[0] * len(latency_p50), np.subtract(latency_p90, latency_p50)],
        fmt="none",
        ecolor="black",
        capsize=3,
    )
    axes[0].set_title("latency p50 ms (whisker to p90)")
    axes[1].barh(latency_names, [0.0] + [(r["size_bytes"] or 0) / 1e6 for r in rows], color="#55A868")
    axes[1].set_title("size on disk, MB")
    axes[2].barh(latency_names, [0.0, *psnr], color="#C44E52")
    axes[2].axvline(baseline, color="black", linestyle="--", label=f"do-nothing {baseline:.1f} dB")
    axes[2].set_title(f"PSNR vs teacher, dB (clipped at {CHART_PSNR_MAX_DB:.0f})")
    axes[2].legend(loc="lower right", fontsize=8)
    for axis, values in zip(
        axes[:2], (latency_p50, [(r["size_bytes"] or 0) / 1e6 for r in rows]), strict=True
    ):
        positive = [v for v in values if v and v > 0]
        if positive and max(positive) / min(positive) > 30:
            axis.set_xscale("log")
    for axis in axes[1:]:
        axis.set_yticklabels([])
    figure.tight_layout()
    out["bars"] = _figure_png(figure)

    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.scatter(p50, psnr, color="#4C72B0")
    if p50 and max(p50) / max(min(p50), 1e-9) > 30:
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(NullFormatter())
    for name, x, y in zip(names, p50, psnr, strict=True):
        axis.annotate(name, (x, y), fontsize=7, xytext=(4, 2), textcoords="offset points")
    axis.axhline(baseline, color="black", linestyle="--", linewidth=1, label="do-nothing baseline")
    axis.set_xlabel("latency p50, ms (lower is better)")
    axis.set_ylabel(f"PSNR vs teacher, dB (higher is better, clipped at {CHART_PSNR_MAX_DB:.0f})")
    axis.set_title("speed / quality")
    axis.legend(fontsize=8)
    figure.tight_layout()
    out["scatter"] = _figure_png(figure)
    return out


def image_grid(
    report: dict[str, Any], pictures: dict[str, list[np.ndarray]], scores: dict[str, dict] | None = None
) -> list[dict[str, Any]]:
    """Per image: its split and columns (label, JPEG, diff-map JPEG or None, per-image numbers vs teacher).

    `scores` maps a column label to its split_fidelity result (per_image numbers); columns without one
    show PSNR only. The input column is doing nothing, so its numbers are the baseline.
    """
    teacher = pictures["teacher"]
    scores = scores or {}
    grid = []
    for index, name in enumerate(report["images"][:GRID_IMAGES]):
        cells = []
        for label, images in pictures.items():
            output = images[index]
            diff = (
                None
                if label in NO_DIFF_COLUMNS
                else png_base64(difference_map(output, teacher[index]), "JPEG")
            )
            numbers = (scores.get(label) or {}).get("per_image", {}).get(name)
            if numbers is None and label != "teacher":
                numbers = {"psnr_db": psnr(output, teacher[index])}
            cells.append(
                {
                    "label": label,
                    "png": png_base64(to_uint8(output), "JPEG"),
                    "diff": diff,
                    "numbers": numbers,
                }
            )
        grid.append({"name": name, "split": report.get("split_of", {}).get(name, ""), "cells": cells})
    return grid


def split_table(report: dict[str, Any]) -> list[str]:
    """Markdown rows: per split, doing nothing and every torch student and runnable artifact vs the teacher."""
    rows = [("do nothing (input)", report["identity_baseline"])]
    rows += [
        (f"torch {Path(k).parent.name}/{Path(k).name}", v["fidelity_vs_teacher"])
        for k, v in report.get("students", {}).items()
    ]
    rows += [(_label(r), r["fidelity_vs_teacher"]) for r in report["artifacts"] if r["status"] == "ok"]
    lines = [
        "| model | split | images | PSNR dB | gain dB | below do-nothing | SSIM | grade ΔE00 | texture SWD | detail dB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, fidelity in rows:
        for split, s in (fidelity.get("splits") or {}).items():
            lines.append(
                f"| {label} | {split} | {s['images']} | {_fmt(s['psnr_db'])} | {_fmt(s.get('gain_db'), '+.2f')} "
                f"| {_fmt(s.get('below_baseline'), 'd')} | {_fmt(s['ssim'], '.4f')} | {_fmt(s['grade_de2000'])} "
                f"| {_fmt(s['texture_swd'])} | {_fmt(s['detail_energy_db'], '+.2f')} |"
            )
    return lines


def _label(row: dict[str, Any]) -> str:
    return row["name"] + (f" [{row['backend']}]" if row.get("backend") else "")


def render_markdown(report: dict[str, Any]) -> str:
    teacher = report["teacher"]
    lines = [
        f"# PocketGAN eval ({report['size']}px, {len(report['images'])} images: {', '.join(report['images'])})",
        "",
        f"- Teacher `{teacher.get('spec')}`: {_fmt(teacher['params'], ',')} params, "
        f"{_fmt(teacher['macs'] / 1e9 if isinstance(teacher['macs'], int) else teacher['macs'])} GMACs, "
        f"torch p50 {_fmt(teacher['latency_ms']['p50'], '.1f')} ms",
        f"- Teacher in onnxruntime: {_ort_line(teacher.get('latency_ms_onnxruntime'))}",
        f"- Do-nothing baseline (input vs teacher): {report['identity_baseline_psnr_db']:.2f} dB",
        f"- MACs: {report['mac_method']}; threads {report['threads']}",
        f"- LPIPS: {report['lpips']}; FID: {report['fid']}",
        "",
        "| artifact | backend | size MB | GMACs | p50 ms | p90 ms | load ms | RSS MB | PSNR vs teacher | "
        "SSIM vs teacher | PSNR vs student | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["artifacts"]:
        lat = r["latency_ms"]
        macs = r["macs"] / 1e9 if isinstance(r["macs"], int) else None
        lines.append(
            f"| {r['name']} | {r['backend'] or '—'} | {_fmt((r['size_bytes'] or 0) / 1e6)} | {_fmt(macs, '.3f')} "
            f"| {_fmt(lat['p50'])} | {_fmt(lat['p90'])} | {_fmt(lat['load'], '.1f')} | {_fmt(r['peak_rss_mb'], '.0f')} "
            f"| {_fmt(r['fidelity_vs_teacher']['psnr_db'])} | {_fmt(r['fidelity_vs_teacher']['ssim'], '.4f')} "
            f"| {_fmt(r['fidelity_vs_student']['psnr_db'])} | {r['status']} |"
        )
    lines += [
        "",
        "Fidelity vs the teacher per split (gain: PSNR over doing nothing, per image then averaged):",
        "",
    ]
    lines += split_table(report)
    notes = [f"- {r['name']}: {note}" for r in report["artifacts"] for note in r.get("notes", [])]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def _ort_line(value: Any) -> str:
    if isinstance(value, dict):
        return f"p50 {value['p50']:.1f} ms ({Path(value['artifact']).name})"
    return str(value)


def template_environment():
    """The jinja2 environment of the report templates, found by the installed package name."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("pocketgan.evals", "templates"), autoescape=select_autoescape(["html"])
    )
    environment.filters["fmt"] = _fmt
    return environment


def render_html(
    report: dict[str, Any],
    pictures: dict[str, list[np.ndarray]],
    scores: dict[str, dict] | None = None,
    preview: bytes | None = None,
) -> str:
    template = template_environment().get_template("report.html")
    return template.render(
        video=report.get("video") if isinstance(report.get("video"), dict) else None,
        video_note=report.get("video") if isinstance(report.get("video"), str) else None,
        preview=base64.b64encode(preview).decode() if preview else None,
        report=report,
        grid=image_grid(report, pictures, scores),
        split_rows=split_table(report)[2:],
        charts=charts(report),
        markdown_table=render_markdown(report),
        diff_gain=DIFF_GAIN,
        ort_line=_ort_line(report["teacher"].get("latency_ms_onnxruntime")),
    )


def write_reports(
    report: dict[str, Any],
    pictures: dict[str, list[np.ndarray]],
    out: Path,
    scores: dict[str, dict] | None = None,
    preview: bytes | None = None,
) -> tuple[Path, Path]:
    """Write report.md and report.html into `out`; returns their paths. `scores`: see image_grid; `preview`:
    the video section's animated WebP."""
    markdown, html = out / "report.md", out / "report.html"
    atomic_write_bytes(markdown, render_markdown(report).encode())
    atomic_write_bytes(html, render_html(report, pictures, scores, preview).encode())
    return markdown, html
