"""The training image pool: seeded multi-scale crops of photos (each a whole image for the teacher) and
synthetic images at one size, sharded across DDP ranks. `--data` takes a folder (recursive) or a glob.

Example: python -c "from distill.config import DistillConfig; from distill.data import training_pool; print(len(training_pool(DistillConfig(pool_size=4, size=32), 32, 0)))"
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from pocketgan.data import augment, dead_leaves, training_images
from pocketgan.distill.config import DistillConfig
from pocketgan.errors import UsageError
from pocketgan.images import context_thumbnail, load_images, resize, to_nchw

log = logging.getLogger(__name__)


def pool_seed(config: DistillConfig, phase_index: int) -> int:
    """The augmentation seed of a phase's pool (part of the teacher-cache key)."""
    return config.seed * 1000 + phase_index


@lru_cache(maxsize=4)
def _user_images(folder: str) -> tuple[np.ndarray, ...]:
    loaded = load_images(folder)
    if not loaded.images:
        raise UsageError(f"--data {folder}: no readable images found (JPEG, PNG, WebP, TIFF, BMP)")
    if loaded.failures:
        log.warning("--data %s: skipped %d unreadable file(s)", folder, len(loaded.failures))
    return tuple(loaded.images)


def training_pool(config: DistillConfig, size: int, phase_index: int) -> list[np.ndarray]:
    """`config.pool_size` uint8 (size, size, 3) training images, identical for a given config and phase."""
    seed = pool_seed(config, phase_index)
    crop_scale = tuple(config.crop_scale)
    if config.data is None:
        return training_images(
            config.pool_size,
            size,
            seed,
            config.synthetic_fraction,
            colour_strength=config.augment_strength,
            portrait_fraction=config.portrait_fraction,
            face_fraction=config.face_fraction,
            crop_scale=crop_scale,
            min_contrast=config.min_crop_contrast,
        )
    photos = _user_images(config.data)
    pool = []
    for i in range(config.pool_size):
        rng = np.random.default_rng([seed, i])
        if rng.random() < config.synthetic_fraction:
            pool.append(dead_leaves(rng, size))
        else:
            photo = photos[int(rng.integers(0, len(photos)))]
            pool.append(
                augment(photo, rng, size, config.augment_strength, crop_scale, config.min_crop_contrast)
            )
    return pool


def shard(count: int, rank: int, world_size: int) -> list[int]:
    """The pool indices a rank owns (every world_size-th, like DistributedSampler without padding)."""
    return list(range(rank, count, world_size))


def epoch_order(indices: list[int], seed: int, epoch: int) -> list[int]:
    """A reproducible shuffle of a rank's indices for one epoch (no RNG state to save or restore)."""
    rng = np.random.default_rng([seed, epoch])
    return [indices[i] for i in rng.permutation(len(indices))]


@dataclass(frozen=True)
class FullSizeTargets:
    """Training photos at `fullres_resolution` (long side) and the teacher's output on each WHOLE photo at that
    size: a batch is `size`-pixel crops of them, with the whole photo's context thumbnail and working size,
    which is how the runtime runs a student on a full-size photo (issue 21). Inputs uint8 (H, W, 3), targets
    float16 (H, W, 3) in [-1, 1], thumbnails float32 (3, 256, 256)."""

    photos: tuple[np.ndarray, ...]
    targets: tuple[np.ndarray, ...]
    thumbnails: torch.Tensor  # (P, 3, 256, 256)
    sizes: torch.Tensor  # (P,): size_feature of each photo's own size

    def batch(self, rng: np.random.Generator, count: int, size: int) -> tuple[torch.Tensor, ...]:
        """(x, y, thumbnails, sizes): `count` random `size`² crops, the same window of input and target."""
        xs, ys, picks = [], [], []
        for _ in range(count):
            k = int(rng.integers(len(self.photos)))
            photo, target = self.photos[k], self.targets[k]
            height, width = photo.shape[:2]
            top, left = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
            xs.append(photo[top : top + size, left : left + size])
            ys.append(target[top : top + size, left : left + size].astype(np.float32).transpose(2, 0, 1))
            picks.append(k)
        chosen = torch.tensor(picks)
        x = torch.from_numpy(to_nchw(xs))
        return x, torch.from_numpy(np.stack(ys)), self.thumbnails[chosen], self.sizes[chosen]


def full_size_targets(config: DistillConfig, threads: int, progress: bool = False) -> FullSizeTargets:
    """The training photos (the embedded train split, or --data) scaled to config.fullres_resolution and the
    teacher's fp32 outputs on them, cached by evals.fullres (the grain fit of `make student` reads the same
    cache: no teacher run twice). Photos whose short side is below config.size are left out."""
    from pocketgan.data.photos import training_photos
    from pocketgan.evals.fullres import scaled_size, teacher_outputs
    from pocketgan.models.students import size_feature

    raw = _user_images(config.data) if config.data is not None else [image for _, image in training_photos()]
    photos = [resize(image, scaled_size(image.shape[:2], config.fullres_resolution)) for image in raw]
    photos = [photo for photo in photos if min(photo.shape[:2]) >= config.size]
    if not photos:
        raise UsageError(f"fullres_resolution {config.fullres_resolution}: no training photo is that large")
    log.info(
        "full-size targets: the teacher on %d photos at %d px (cached)",
        len(photos),
        config.fullres_resolution,
    )
    targets, section = teacher_outputs(
        photos,
        teacher=config.teacher,
        resolution=config.fullres_resolution,
        weights=config.teacher_weights,
        threads=threads,
        cache=config.cache_dir,
        progress=progress,
    )
    log.info("full-size targets: %d cached, %d run", section["cache_hits"], section["cache_misses"])
    return FullSizeTargets(
        photos=tuple(photos),
        targets=tuple(t.astype(np.float16) for t in targets),
        thumbnails=torch.from_numpy(to_nchw([context_thumbnail(photo) for photo in photos])),
        sizes=torch.tensor([size_feature(*photo.shape[:2]) for photo in photos], dtype=torch.float32),
    )
