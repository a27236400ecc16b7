"""Teacher-output cache on disk, so a second run (or a resumed one) never runs the teacher again.

One `.npy` file (float16, CHW, [-1, 1]) per (teacher hash, image content hash, size, augmentation seed),
written atomically and read with `allow_pickle=False`. Default location: $POCKETGAN_CACHE or
~/.cache/pocketgan, under `teacher_outputs/<teacher hash>/`. Crops of photos make many distinct entries, so
the cache is bounded: after writing, the least recently used entries (a hit refreshes an entry's mtime) are
deleted until the whole cache holds at most $POCKETGAN_CACHE_MAX_MB (default 4096) MB.

Example: python -c "from distill.cache import default_cache_dir; print(default_cache_dir())"
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pocketgan.artifacts import cache_home
from pocketgan.images import to_nchw
from pocketgan.manifest import atomic_path

log = logging.getLogger(__name__)


DEFAULT_MAX_MB = 4096


def default_max_bytes() -> int:
    return int(float(os.environ.get("POCKETGAN_CACHE_MAX_MB") or DEFAULT_MAX_MB) * 1e6)


def default_cache_dir() -> Path:
    return cache_home() / "teacher_outputs"


def image_sha256(image: np.ndarray) -> str:
    """Content hash of a uint8 HxWx3 image (shape included)."""
    digest = hashlib.sha256(f"{image.shape}|{image.dtype}|".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class TeacherOutputCache:
    """Teacher outputs for one teacher, keyed by image content, size and augmentation seed."""

    def __init__(self, root: str | os.PathLike | None, teacher_hash: str, max_bytes: int | None = None):
        self.root = Path(root) if root else default_cache_dir()
        self.max_bytes = default_max_bytes() if max_bytes is None else max_bytes
        self.folder = self.root / teacher_hash[:32]
        self.hits = 0
        self.misses = 0

    def path(self, image: np.ndarray, size: int, seed: int) -> Path:
        return self.folder / f"{size}" / f"{image_sha256(image)[:40]}-seed{seed}.npy"

    def get(self, image: np.ndarray, size: int, seed: int) -> np.ndarray | None:
        path = self.path(image, size, seed)
        if not path.is_file():
            return None
        try:
            output = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None
        if output.shape != (3, *image.shape[:2]):
            log.warning("ignoring cache entry %s of shape %s", path, output.shape)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        return output.astype(np.float32)

    def put(self, image: np.ndarray, size: int, seed: int, output: np.ndarray) -> None:
        path = self.path(image, size, seed)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(output, dtype=np.float16), allow_pickle=False)

    def prune(self) -> int:
        """Delete the least recently used entries until the cache fits max_bytes; returns how many."""
        entries = []
        for path in self.root.rglob("*.npy"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries, key=lambda e: (e[0], str(e[2]))):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
                removed += 1
        if removed:
            log.info(
                "teacher cache: removed %d least recently used entries (limit %d MB)",
                removed,
                self.max_bytes // 10**6,
            )
        return removed

    def outputs(
        self,
        teacher: Callable[[torch.Tensor], torch.Tensor],
        images: list[np.ndarray],
        size: int,
        seed: int,
        batch: int = 4,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Teacher outputs (N, 3, H, W) float32 for uint8 images, running the teacher only on misses."""
        results: list[np.ndarray | None] = [self.get(image, size, seed) for image in images]
        missing = [i for i, result in enumerate(results) if result is None]
        self.hits += len(images) - len(missing)
        self.misses += len(missing)
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            x = torch.from_numpy(to_nchw([images[i] for i in chunk]))
            y = teacher(x).float().cpu().numpy()
            for i, output in zip(chunk, y, strict=True):
                # Round through float16 so a fresh run and a cached run train on identical targets.
                results[i] = output.astype(np.float16).astype(np.float32)
                self.put(images[i], size, seed, output)
            if progress:
                progress(len(chunk))
        if missing:
            self.prune()
        return np.stack(results) if results else np.zeros((0, 3, size, size), np.float32)
