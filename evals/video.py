"""The video section of `pocketgan eval`: flicker of each artifact against the teacher's on test clips with
known motion, frames/s, and an animated side-by-side preview (input | teacher | student).

Clips come from pocketgan.data.clips (test photos only, pan + zoom + shake + noise + an exposure ramp), small
(eval's --size wide, 9:16 high: 256x144, 16 frames at 12 fps) because the teacher runs at ~1.5 s a 256x144
frame on a CPU: its frames are cached in the
artifact cache's `teacher-video` folder ($POCKETGAN_CACHE, else ~/.cache/pocketgan/artifacts), keyed by
the clip and the teacher. Each artifact runs every frame as `pocketgan run` does (Session.run), per frame and with the
smoothed context (runtime.video.ClipModel); flicker is pocketgan.metrics.flicker (the warping error
after compensating the clip's known motion, over the teacher's).

Example: python -c "from pocketgan.evals.video import clip_frames, video_clips; print(len(clip_frames(video_clips(256)[0])[0]))"
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.data.clips import RENDER_VERSION, ClipSpec, render
from pocketgan.metrics import flicker

log = logging.getLogger(__name__)

CLIP_PHOTOS = ("kite", "evening_glow")  # test split
CLIP_FRAMES = 16
CLIP_FPS = 12
PREVIEW_MS = 1000 // CLIP_FPS


def video_clips(width: int) -> list[ClipSpec]:
    """The eval's clips at `width` x 9/16 of it (both multiples of 4, as the teacher's two stride-2 stages need)."""
    width = max(16, width // 4 * 4)
    height = max(16, round(width * 9 / 16 / 4) * 4)
    return [
        ClipSpec(photo, width, height, CLIP_FRAMES, CLIP_FPS, seed) for seed, photo in enumerate(CLIP_PHOTOS)
    ]


def clip_frames(spec: ClipSpec) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(uint8 frames, affine maps) of a test clip, rendered in memory (no codec between model and metric)."""
    frames = list(render(spec))
    return [frame.pixels for frame in frames], [frame.affine for frame in frames]


def _cache_folder() -> Path:
    from pocketgan.artifacts import cache_root

    return cache_root() / "teacher-video"


def teacher_frames(teacher, teacher_key: str, spec: ClipSpec, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The teacher's uint8 output for every frame, from the cache when this clip and teacher were run before."""
    from pocketgan.evals.common import torch_outputs
    from pocketgan.images import to_uint8
    from pocketgan.manifest import atomic_write_bytes

    key = hashlib.sha256(f"{spec}|{RENDER_VERSION}|{teacher_key}".encode()).hexdigest()[:20]
    path = _cache_folder() / f"{spec.photo}-{spec.width}x{spec.height}-{key}.npz"
    if path.exists():
        with np.load(path) as stored:
            return list(stored["frames"])
    outputs = [to_uint8(output) for output in torch_outputs(teacher, frames)]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, frames=np.stack(outputs))
    atomic_write_bytes(path, buffer.getvalue())
    return outputs


def _run_clip(model, frames: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """`model` on every frame in order: (outputs, frames per second)."""
    start = time.perf_counter()
    outputs = [model(frame) for frame in frames]
    return outputs, len(frames) / (time.perf_counter() - start)


def artifact_video_row(session, clips: list[dict[str, Any]]) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Flicker (per frame and smoothed context) and frames/s of one loaded artifact on every clip; also its
    per-frame outputs of the first clip (for the preview)."""
    from pocketgan.runtime.video import ClipModel

    per_clip, preview = [], []
    for clip in clips:
        plain, fps = _run_clip(ClipModel(session, smoothing=0.0), clip["frames"])  # per frame
        smoothed, _ = _run_clip(ClipModel(session), clip["frames"])
        per_clip.append(
            {
                "clip": clip["name"],
                "fps": fps,
                "per_frame": flicker(plain, clip["teacher"], clip["affines"]),
                "stabilised": flicker(smoothed, clip["teacher"], clip["affines"]),
            }
        )
        preview = preview or (smoothed if session.has_context else plain)
    row = {
        "has_context": session.has_context,
        "clips": per_clip,
        "flicker_ratio": float(np.mean([c["per_frame"]["ratio"] for c in per_clip])),
        "flicker_ratio_stabilised": float(np.mean([c["stabilised"]["ratio"] for c in per_clip])),
        "fps": float(np.mean([c["fps"] for c in per_clip])),
    }
    return row, preview


def video_section(
    teacher, teacher_key: str, artifacts: list[Path], threads: int, width: int
) -> tuple[dict, bytes | None]:
    """eval.json's "video" section and the preview (animated WebP bytes, None when no artifact ran)."""
    from pocketgan import runtime
    from pocketgan.errors import PocketGANError
    from pocketgan.runtime.base import get_backend

    clips = []
    for spec in video_clips(width):
        frames, affines = clip_frames(spec)
        outputs = teacher_frames(teacher, teacher_key, spec, frames)
        clips.append({"name": f"{spec.photo} {spec.width}x{spec.height}x{spec.frames}", "frames": frames})
        clips[-1].update(affines=affines, teacher=outputs, spec=spec)
    section: dict[str, Any] = {
        "clips": [{"name": c["name"], "motion": "pan, zoom, shake, noise, exposure ramp"} for c in clips],
        "metric": "warping error after compensating the known motion, over the teacher's (1 = as stable)",
        "artifacts": [],
    }
    preview = None
    for path in artifacts:
        try:
            session = runtime.load(path, threads=threads, verify=False)
        except PocketGANError as exc:
            section["artifacts"].append({"path": str(path), "status": f"unavailable: {exc}"})
            continue
        note = get_backend(session.backend).video_note
        if note:
            section["artifacts"].append({"path": str(path), "name": path.name, "status": note})
            continue
        row, outputs = artifact_video_row(session, clips)
        section["artifacts"].append({"path": str(path), "name": path.name, "status": "ok"} | row)
        if preview is None:
            preview = preview_webp(clips[0]["frames"], clips[0]["teacher"], outputs)
            section["preview_student"] = path.name
    return section, preview


def preview_webp(inputs: list[np.ndarray], teacher: list[np.ndarray], student: list[np.ndarray]) -> bytes:
    """An animated WebP, input | teacher | student side by side (~150 KB at 256x144)."""
    from PIL import Image

    strips = [
        Image.fromarray(np.concatenate([a, b, c], axis=1))
        for a, b, c in zip(inputs, teacher, student, strict=True)
    ]
    buffer = io.BytesIO()
    strips[0].save(
        buffer, "WEBP", save_all=True, append_images=strips[1:], duration=PREVIEW_MS, loop=0, quality=80
    )
    return buffer.getvalue()
