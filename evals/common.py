"""What eval and parity share: finding artifacts, the evaluation images, running artifacts and torch models.

Example: python -c "from evals.common import find_artifacts; print(find_artifacts('dist'))"
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan import runtime
from pocketgan.data import split_images
from pocketgan.errors import BackendUnavailable, ModelLoadError, UsageError
from pocketgan.images import center_crop_square, load_images, resize, to_float, to_uint8
from pocketgan.manifest import MANIFEST_SUFFIX, read_manifest
from pocketgan.runtime.base import format_of
from pocketgan.status import OK, Status, failed, unavailable

MISSING_ARTIFACT = "the artifact file is missing: only its manifest is there"


def artifact_format(path: str | os.PathLike, manifest: dict[str, Any] | None = None) -> str:
    """The artifact's format from its manifest, else from its file suffix (the runtime backends' facts)."""
    if manifest and manifest.get("format"):
        return str(manifest["format"])
    return format_of(path) or "unknown"


def find_artifacts(directory: str | os.PathLike) -> list[Path]:
    """Every artifact under `directory` that has a `*.manifest.json` beside it (sorted)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such artifacts folder")
    manifests = sorted(
        p
        for p in directory.rglob("*" + MANIFEST_SUFFIX)
        if not any(part.startswith(".tmp-") for part in p.parts)
    )
    if not manifests:
        raise UsageError(f"{directory}: no *{MANIFEST_SUFFIX} found (make some with `pocketgan export`)")
    return [m.with_name(m.name[: -len(MANIFEST_SUFFIX)]) for m in manifests]


def eval_images(
    size: int, data: str | os.PathLike | None = None, split: str = "test"
) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 size x size x 3): the embedded set's `split` photos (comma-separated splits allowed:
    "validation,test"), or every image under `data`; centre-cropped."""
    if data is None:
        return [named for name in split.split(",") for named in split_images(name.strip(), size)]
    loaded = load_images(data)
    if not loaded.images:
        raise UsageError(f"{data}: no readable images")
    return [
        (path.stem, resize(center_crop_square(image), size))
        for path, image in zip(loaded.paths, loaded.images, strict=True)
    ]


def image_splits(names: list[str], data: str | os.PathLike | None, split: str) -> dict[str, str]:
    """Which split each evaluation image belongs to ("data" for a user's folder)."""
    if data is not None:
        return dict.fromkeys(names, "data")
    from pocketgan.data.photos import photos

    return {p.name: p.split for p in photos() if p.name in names}


def manifest_size(manifest: dict[str, Any] | None) -> int | None:
    """The square spatial size an artifact was exported at, from its manifest input shape."""
    try:
        shape = manifest["input"]["shape"]
        layout = manifest["input"].get("layout", "NCHW")
        height = shape[2] if layout == "NCHW" else shape[1]
        return int(height)
    except (KeyError, TypeError, IndexError, ValueError):
        return None


@dataclass
class ArtifactRun:
    """An artifact's outputs on the eval images (float HxWx3 in [-1, 1]) or why it could not run."""

    path: Path
    manifest: dict[str, Any] | None
    status: Status = OK
    backend: str | None = None
    size: tuple[int, int] | None = None
    outputs: list[np.ndarray] = field(default_factory=list)
    first_nonfinite_op: str | None = None  # from engines that trace ops (coreml-reference)


def run_artifact(
    path: str | os.PathLike,
    images: list[np.ndarray],
    threads: int | None = None,
    backend: str | None = None,
    verify: bool = True,
) -> ArtifactRun:
    """Run every image through the artifact; at its own size via `predict`, else via `run` (resizes).

    `verify=False` when the caller has checked the artifact against its manifest already.
    """
    path = Path(path)
    result = ArtifactRun(path, read_manifest(path))
    if not path.exists():
        result.status = failed(MISSING_ARTIFACT)
        return result
    try:
        session = runtime.load(path, backend=backend, threads=threads, verify=verify)
    except BackendUnavailable as exc:
        result.status = unavailable(str(exc))
        return result
    except (ModelLoadError, UsageError) as exc:
        result.status = failed(str(exc), exc)
        return result
    result.backend, result.size = session.backend, tuple(session.size) if session.size else None
    for image in images:
        if result.size is None or tuple(image.shape[:2]) == result.size:
            x = to_float(image).transpose(2, 0, 1)[None]
            result.outputs.append(np.asarray(session.predict(x), np.float32)[0].transpose(1, 2, 0))
        else:
            result.outputs.append(to_float(session.run(image)))
        if result.first_nonfinite_op is None:
            result.first_nonfinite_op = session.first_nonfinite_op
    return result


def torch_model(model) -> Callable[[np.ndarray], np.ndarray]:
    """A torch module (or a distill Teacher) as a function of one float HxWx3 image in [-1, 1], batch 1."""
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            y = model(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))[None]))
        return y.float().clamp(-1, 1)[0].permute(1, 2, 0).numpy().copy()

    return run


def torch_full_size(model, device="cpu") -> Callable[[np.ndarray], np.ndarray]:
    """A student with a context input as a function of one uint8 photo at its own size, given that photo's
    context thumbnail, as Session.run runs it: float HxWx3 in [-1, 1]."""
    import torch

    from pocketgan.images import context_thumbnail, to_nchw

    def run(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(to_nchw([image])).to(device)
            thumb = torch.from_numpy(to_nchw([context_thumbnail(image)])).to(device)
            return model(x, thumb).float().clamp(-1, 1)[0].permute(1, 2, 0).cpu().numpy()

    return run


def torch_outputs(model, images: list[np.ndarray]) -> list[np.ndarray]:
    """A torch module (or a distill Teacher) on each uint8 image, batch 1: float HxWx3 in [-1, 1]."""
    run = torch_model(model)
    return [run(to_float(image)) for image in images]


def load_source_student(manifest: dict[str, Any] | None, artifact: Path):
    """The torch model an artifact was exported from: (module, description) or (None, reason).

    A checkpoint path, or else the model spec it was exported from (`student:NAME`, `pkg.module:factory`).
    """
    source = (manifest or {}).get("source") or {}
    checkpoint = source.get("checkpoint")
    if not checkpoint and source.get("kind") == "student" and source.get("spec"):
        from pocketgan.models.resolve import resolve  # imports torch

        try:
            return resolve(source["spec"]).module, str(source["spec"])
        except (ModelLoadError, UsageError) as exc:
            return None, unavailable(str(exc))
    if not checkpoint:
        return None, unavailable("the manifest names no source checkpoint")
    path = Path(checkpoint)
    if not path.is_absolute() and not path.exists():
        path = artifact.parent / path
    if not path.exists():
        return None, unavailable(f"source checkpoint {checkpoint} not found")
    from pocketgan.checkpoint import load_student  # imports torch

    try:
        model, _ = load_student(path)
    except (ModelLoadError, UsageError) as exc:
        return None, unavailable(str(exc))
    return model, str(path)


def to_display(image: np.ndarray) -> np.ndarray:
    """float HxWx3 in [-1, 1] -> uint8 for pictures."""
    return to_uint8(image)
