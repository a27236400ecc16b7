"""`pocketgan eval --resolution N`: every artifact at full size against the teacher run at that size.

Each photo is scaled so its long side is N (never up: a smaller photo stays at its size), both sides a
multiple of 4 (the teacher's two stride-2 stages). The teacher runs on it once: its outputs are cached on
disk (teacher_cache_folder: keyed by teacher hash, N and image content), so a second eval
costs no teacher time. Artifacts run through `Session.run`, exactly as `pocketgan run` runs a photo
(working size up to `max_side`, guided upsampling beyond). Per artifact and image: PSNR/SSIM, the gain over
doing nothing (the input scored against the teacher), grade ΔE00, texture SWD, detail energy, and the
detail ratio (the output's gradient energy over the teacher's: near 0 is blurred, 1 has the teacher's
detail). OUT/eval.json holds the numbers; OUT/report.html shows 1:1 crops side by side (input, teacher,
each artifact) of two windows per photo: the teacher's most detailed and the photo's flattest (grain).

Example: pocketgan eval --artifacts dist/ --resolution 1280 --out build/eval-1280
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan import runtime
from pocketgan.artifacts import cache_home
from pocketgan.config import DEFAULT_TEACHER
from pocketgan.errors import BackendUnavailable, ModelLoadError, UsageError
from pocketgan.evals.common import artifact_format, find_artifacts, image_splits
from pocketgan.evals.splits import split_fidelity
from pocketgan.images import find_images, load_image, resize, to_float, to_uint8
from pocketgan.manifest import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    library_versions,
    now_iso,
    verify_artifacts,
)
from pocketgan.metrics import detail_ratio
from pocketgan.runtime.session import DEFAULT_MAX_SIDE, SIZE_TAG
from pocketgan.status import OK, failed, unavailable

log = logging.getLogger(__name__)

CROP = 256  # side of the 1:1 crops in report.html
SIDE_MULTIPLE = 4


@dataclass(frozen=True)
class FullResConfig:
    artifacts: str
    resolution: int
    teacher: str = DEFAULT_TEACHER
    teacher_weights: str | None = None
    data: str | None = None
    split: str = "test"
    out: str = "build/eval"
    threads: int = 2
    max_side: int | None = DEFAULT_MAX_SIDE
    cache: str | None = None  # teacher-output cache root (default: $POCKETGAN_CACHE or ~/.cache/pocketgan)
    progress: bool = True

    def __post_init__(self):
        if self.resolution < 16:
            raise UsageError(f"--resolution must be at least 16, got {self.resolution}")
        if self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")


def scaled_size(size: tuple[int, int], resolution: int) -> tuple[int, int]:
    """(H, W) with the long side at most `resolution` (never scaled up), each a multiple of SIDE_MULTIPLE."""
    scale = min(1.0, resolution / max(size))
    return tuple(max(SIDE_MULTIPLE, round(side * scale / SIDE_MULTIPLE) * SIDE_MULTIPLE) for side in size)


def full_size_images(config: FullResConfig) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 image at the eval size): the embedded split's photos, or every image under --data."""
    if config.data is None:
        return split_full_size(config.split, config.resolution)
    named = [(path.stem, load_image(path)) for path in find_images(config.data)]
    if not named:
        raise UsageError(f"{config.data}: no images")
    return [(name, resize(image, scaled_size(image.shape[:2], config.resolution))) for name, image in named]


def split_full_size(split: str, resolution: int) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 image) of the embedded validation and/or test photos ("validation,test"), scaled to
    `resolution` (long side, never up)."""
    from pocketgan.data.photos import _read_split_file, split_photos  # the one reader of held-out photos

    splits = [s.strip() for s in split.split(",")]
    if "train" in splits:
        raise UsageError("--split takes validation and/or test: training photos are not evaluated on")
    named = [(p.name, _read_split_file(p.path())) for name in splits for p in split_photos(name)]
    return [(name, resize(image, scaled_size(image.shape[:2], resolution))) for name, image in named]


def teacher_cache_folder(cache: str | None, resolution: int, teacher_hash: str) -> Path:
    """$POCKETGAN_CACHE (or ~/.cache/pocketgan, or `cache`)/teacher_fullres/<teacher hash>/<resolution>/."""
    return cache_home(cache) / "teacher_fullres" / teacher_hash[:32] / str(resolution)


def teacher_outputs(
    images: list[np.ndarray],
    *,
    teacher: str,
    resolution: int,
    weights: str | None = None,
    threads: int = 2,
    cache: str | None = None,
    progress: bool = False,
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The teacher on each image at its size (float HxWx3 in [-1, 1]): one float16 .npy per image content
    in teacher_cache_folder, so a second eval (or the grain fit, distill/grain.py) runs no teacher.
    `progress`: a bar over the photos (a cold run at 1280 px takes seconds a photo)."""
    import torch
    from tqdm import tqdm

    from pocketgan.models.teacher import load_teacher  # imports torch

    torch.set_num_threads(threads)
    model = load_teacher(teacher, weights)
    folder = teacher_cache_folder(cache, resolution, model.hash)
    outputs, hits = [], 0
    for image in tqdm(images, desc=f"teacher {resolution}px full size", disable=not progress, leave=False):
        digest = hashlib.sha256(f"{image.shape}|".encode() + np.ascontiguousarray(image).tobytes())
        path = folder / f"{digest.hexdigest()[:40]}.npy"
        cached = np.load(path, allow_pickle=False) if path.is_file() else None
        if cached is not None and cached.shape == image.shape:
            hits += 1
        else:
            with torch.no_grad():
                x = torch.from_numpy(to_float(image).transpose(2, 0, 1)[None].copy())
                cached = model(x).float().clamp(-1, 1)[0].permute(1, 2, 0).numpy().astype(np.float16)
            with atomic_path(path) as temporary, open(temporary, "wb") as handle:
                np.save(handle, cached, allow_pickle=False)
        outputs.append(cached.astype(np.float32))
    section = {"spec": teacher, "hash": model.hash, "cache": str(folder)}
    return outputs, section | {"cache_hits": hits, "cache_misses": len(images) - hits}


def _run(path: Path, images: list[np.ndarray], config: FullResConfig) -> tuple[dict[str, Any], list | None]:
    row: dict[str, Any] = {"path": str(path), "name": path.name, "format": artifact_format(path)}
    try:
        session = runtime.load(path, threads=config.threads, verify=False, max_side=config.max_side)
    except BackendUnavailable as exc:
        return row | {"status": unavailable(str(exc))}, None
    except (ModelLoadError, UsageError) as exc:
        return row | {"status": failed(str(exc))}, None
    row.update(
        backend=session.backend,
        precision=(session.manifest or {}).get("precision"),
        context_input=session.has_context,
        sizes=session.sizes.to_json(),
        working_sizes=[list(session.working_size(image.shape[:2])) for image in images],
        status=OK,
    )
    with session:
        return row, [to_float(session.run(image)) for image in images]


def _one_per_export(paths: list[Path]) -> list[Path]:
    """Artifacts without the per-size files of an export listed beside their main file: Session.run of the
    main file picks among them (runtime.session.size_files), so one row covers the export."""
    names = {path.name for path in paths}
    return [
        path
        for path in paths
        if not (SIZE_TAG.search(path.stem) and SIZE_TAG.sub("", path.stem) + path.suffix in names)
    ]


def _scores(outputs, teachers, names, split_of, baseline) -> dict[str, Any]:
    fidelity = split_fidelity(outputs, teachers, names, split_of, baseline)
    ratios = [detail_ratio(o, t) for o, t in zip(outputs, teachers, strict=True)]
    for name, ratio in zip(names, ratios, strict=True):
        fidelity["per_image"][name]["detail_ratio"] = ratio
    fidelity["detail_ratio"] = {"mean": float(np.mean(ratios)), "min": float(np.min(ratios))}
    for scores in fidelity["per_image"].values():
        scores.setdefault("gain_db", 0.0)  # the baseline itself: no gain over itself
    fidelity["gain_db"] = float(np.mean([s["gain_db"] for s in fidelity["per_image"].values()]))
    return fidelity


def evaluate_full_resolution(config: FullResConfig) -> dict[str, Any]:
    """Run every artifact under config.artifacts at full size; write OUT/eval.json and OUT/report.html."""
    from tqdm import tqdm

    paths = find_artifacts(config.artifacts)
    verify_artifacts([path for path in paths if path.exists()], required=True)
    paths = _one_per_export(paths)
    named = full_size_images(config)
    names, images = [n for n, _ in named], [i for _, i in named]
    split_of = image_splits(names, config.data, config.split)
    teachers, teacher_section = teacher_outputs(
        images,
        teacher=config.teacher,
        resolution=config.resolution,
        weights=config.teacher_weights,
        threads=config.threads,
        cache=config.cache,
        progress=config.progress,
    )
    inputs = [to_float(image) for image in images]
    baseline = _scores(inputs, teachers, names, split_of, None)
    rows, pictures = [], {"input": inputs, "teacher": teachers}
    for path in tqdm(paths, desc="eval", unit="artifact", disable=not config.progress):
        row, outputs = _run(path, images, config)
        if outputs is not None:
            row["fidelity_vs_teacher"] = _scores(outputs, teachers, names, split_of, baseline)
            pictures[row["name"]] = outputs
        rows.append(row)
    report = {
        "resolution": config.resolution,
        "max_side": config.max_side,
        "images": names,
        "sizes": {name: list(image.shape[:2]) for name, image in named},
        "split_of": split_of,
        "data": config.data or f"embedded photo set, split {config.split} (pocketgan/data/photos.toml)",
        "identity_baseline_psnr_db": baseline["psnr_db"],
        "identity_baseline": baseline,
        "teacher": teacher_section,
        "artifacts": rows,
        "threads": config.threads,
        "versions": library_versions(("torch", "onnxruntime", "ai-edge-litert", "numpy", "pillow")),
        "created": now_iso(),
    }
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "eval.json", report)
    atomic_write_bytes(out / "report.html", render_crops_html(report, pictures).encode())
    return report


def summary_table(report: dict[str, Any]) -> str:
    """One line per artifact: PSNR, gain over doing nothing, SSIM, detail ratio mean and minimum."""
    lines = [
        f"long side {report['resolution']} px, working cap {report['max_side']}, {len(report['images'])} images; "
        f"do nothing: {report['identity_baseline_psnr_db']:.2f} dB"
    ]
    for row in report["artifacts"]:
        fidelity = row.get("fidelity_vs_teacher")
        if fidelity is None:
            lines.append(f"{row['name']}: {row['status']}")
            continue
        ratio = fidelity["detail_ratio"]
        lines.append(
            f"{row['name']} ({row['backend']}): {fidelity['psnr_db']:.2f} dB, gain {fidelity['gain_db']:+.2f} dB, "
            f"SSIM {fidelity['ssim']:.3f}, detail ratio mean {ratio['mean']:.2f} min {ratio['min']:.2f}"
        )
    return "\n".join(lines)


def crop_box(image: np.ndarray, side: int = CROP, flattest: bool = False) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the side x side window where `image` has the most detail (or, with
    `flattest`, the least: where the teacher's grain shows on a flat photo)."""
    height, width = image.shape[:2]
    side_h, side_w = min(side, height), min(side, width)
    detail = np.abs(np.diff(image.mean(axis=2), axis=1))
    step = max(side // 2, 1)
    sign = -1.0 if flattest else 1.0
    best, box = -np.inf, (0, 0)
    for top in range(0, max(height - side_h, 0) + 1, step):
        for left in range(0, max(width - side_w, 0) + 1, step):
            score = sign * float(detail[top : top + side_h, left : left + side_w - 1].sum())
            if score > best:
                best, box = score, (top, left)
    return box[0], box[1], box[0] + side_h, box[1] + side_w


def render_crops_html(report: dict[str, Any], pictures: dict[str, list[np.ndarray]]) -> str:
    """A self-contained page: the numbers per artifact, then per image 1:1 crops side by side."""
    from jinja2 import Template

    from pocketgan.evals.report import png_base64

    crops = []
    for index, name in enumerate(report["images"]):
        boxes = {
            "the teacher's most detailed window": crop_box(pictures["teacher"][index]),
            "the photo's flattest window (grain)": crop_box(pictures["input"][index], flattest=True),
        }
        for where, (top, left, bottom, right) in boxes.items():
            cells = [
                (label, png_base64(to_uint8(images[index][top:bottom, left:right])))
                for label, images in pictures.items()
            ]
            size = report["sizes"][name]
            crops.append({"name": name, "size": size, "box": [top, left], "where": where, "cells": cells})
    return Template(_HTML, autoescape=True).render(report=report, crops=crops)


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PocketGAN full-resolution eval</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
 table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
 .row { display: flex; gap: 6px; overflow-x: auto; } .cell { font-size: 12px; text-align: center; }
 .cell img { image-rendering: pixelated; display: block; }
</style></head><body>
<h1>Full resolution: long side {{ report.resolution }} px, working cap {{ report.max_side }}</h1>
<p>Teacher {{ report.teacher.spec }} run at each image's size (cache: {{ report.teacher.cache_hits }} hits,
{{ report.teacher.cache_misses }} runs). Do nothing: {{ "%.2f" % report.identity_baseline_psnr_db }} dB.</p>
<table><tr><th>artifact</th><th>backend</th><th>PSNR dB</th><th>gain dB</th><th>SSIM</th><th>ΔE00</th>
<th>detail ratio mean / min</th><th>status</th></tr>
{% for row in report.artifacts %}{% set f = row.fidelity_vs_teacher %}
<tr><td>{{ row.name }}</td><td>{{ row.backend }}</td>
{% if f %}<td>{{ "%.2f" % f.psnr_db }}</td><td>{{ "%+.2f" % f.gain_db }}</td><td>{{ "%.3f" % f.ssim }}</td>
<td>{{ "%.2f" % f.grade_de2000 }}</td><td>{{ "%.2f" % f.detail_ratio.mean }} / {{ "%.2f" % f.detail_ratio.min }}</td>
{% else %}<td colspan="5"></td>{% endif %}<td>{{ row.status }}</td></tr>{% endfor %}
</table>
{% for crop in crops %}
<h2>{{ crop.name }} ({{ crop.size[1] }}×{{ crop.size[0] }}; {{ crop.where }}: row {{ crop.box[0] }}, column {{ crop.box[1] }}, 1:1)</h2>
<div class="row">{% for label, png in crop.cells %}
<div class="cell"><img src="data:image/jpeg;base64,{{ png }}" alt="{{ label }}">{{ label }}</div>{% endfor %}</div>
{% endfor %}
</body></html>
"""
