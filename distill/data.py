"""The training image pool: seeded multi-scale crops of photos (each a whole image for the teacher) and
synthetic images at one size, sharded across DDP ranks. `--data` takes a folder (recursive) or a glob.

Example: python -c "from distill.config import DistillConfig; from distill.data import training_pool; print(len(training_pool(DistillConfig(pool_size=4, size=32), 32, 0)))"
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from pocketgan.data import augment, dead_leaves, training_images
from pocketgan.distill.config import DistillConfig
from pocketgan.errors import UsageError
from pocketgan.images import load_images

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
