"""Fit the teacher's grain statistics (pocketgan.runtime.grain.GrainModel) on training photos at full size.

The teacher runs on each training photo scaled to `--resolution` (long side; its outputs are cached as
`pocketgan eval --resolution` caches them). Only flat 32x32 patches are used (the photo's own fine detail
below FLAT_ENERGY), so what is measured is what the teacher adds, not what it keeps: their high-pass
residual (output minus a Gaussian blur, sigma 2) gives the spectrum (-> kernel), the channel covariance
(-> colour matrix) and the standard deviation by luminance (-> std table). Validation and test photos are
never read here.

Example: python -m pocketgan.distill.grain --resolution 1280 --out pocketgan/zoo/vintage-mobile/grain.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from pocketgan.images import to_float
from pocketgan.manifest import atomic_write_json, now_iso
from pocketgan.runtime.grain import GrainModel

PATCH = 32
FLAT_ENERGY = 2e-4  # mean squared high-pass of the photo's patch (values in [-1, 1]): ~1.8 levels rms
BLUR_SIGMA = 2.0
KERNEL_SIDE = 15
LUMA_BIN = 16  # levels per luminance bin of the std table
MIN_PATCHES = 20  # a luminance bin with fewer flat patches is interpolated from its neighbours


def _patches(image: np.ndarray) -> np.ndarray:
    """(N, PATCH, PATCH, C) non-overlapping patches of an (H, W, C) array."""
    height, width = (image.shape[0] // PATCH) * PATCH, (image.shape[1] // PATCH) * PATCH
    blocks = image[:height, :width].reshape(height // PATCH, PATCH, width // PATCH, PATCH, -1)
    return blocks.transpose(0, 2, 1, 3, 4).reshape(-1, PATCH, PATCH, image.shape[2])


def _high_pass(image: np.ndarray) -> np.ndarray:
    return image - gaussian_filter(image, (BLUR_SIGMA, BLUR_SIGMA, 0))


def flat_residuals(photo: np.ndarray, teacher: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flat patches of the teacher's high-pass residual (N, P, P, 3) in levels, their luminance (N,))."""
    photo_patches = _patches(_high_pass(to_float(photo)))
    flat = np.mean(photo_patches**2, axis=(1, 2, 3)) < FLAT_ENERGY
    residual = _patches(_high_pass(teacher))[flat] * 127.5
    levels = (teacher + 1.0) * 127.5
    luma = (levels[..., 0] + 2 * levels[..., 1] + levels[..., 2]) / 4
    return residual, _patches(luma[..., None])[flat].mean(axis=(1, 2, 3))


def fit_grain(pairs: Sequence[tuple[np.ndarray, np.ndarray]], seed: int = 0) -> GrainModel:
    """GrainModel from (uint8 photo, teacher output float in [-1, 1]) pairs at the same size."""
    residuals, lumas = zip(*(flat_residuals(photo, teacher) for photo, teacher in pairs), strict=True)
    residual, luma = np.concatenate(residuals), np.concatenate(lumas)
    if len(residual) < MIN_PATCHES:
        raise ValueError(f"only {len(residual)} flat patches: too few to fit the grain")
    window = np.outer(np.hanning(PATCH), np.hanning(PATCH))[None, :, :, None]
    power = np.mean(np.abs(np.fft.fft2(residual * window, axes=(1, 2))) ** 2, axis=(0, 3))
    kernel = np.fft.fftshift(np.real(np.fft.ifft2(np.sqrt(power))))
    centre, half = PATCH // 2, KERNEL_SIDE // 2
    kernel = kernel[centre - half : centre + half + 1, centre - half : centre + half + 1]
    kernel /= np.sqrt(np.sum(kernel**2))
    flat_pixels = residual.reshape(-1, 3)
    covariance = flat_pixels.T @ flat_pixels / len(flat_pixels)
    stds = np.sqrt(np.diag(covariance))
    correlation = covariance / np.outer(stds, stds)
    colour = np.diag(stds / np.sqrt(np.mean(stds**2))) @ np.linalg.cholesky(correlation)
    rms = np.sqrt(np.mean(residual**2, axis=(1, 2, 3)))
    centres, values = [], []
    for low in range(0, 256, LUMA_BIN):
        chosen = (luma >= low) & (luma < low + LUMA_BIN)
        if chosen.sum() >= MIN_PATCHES:
            centres.append(low + LUMA_BIN / 2)
            values.append(float(np.sqrt(np.mean(rms[chosen] ** 2))))
    if len(centres) < 2:
        raise ValueError("flat patches cover fewer than two luminance bins: too few to fit the grain")
    return GrainModel(
        kernel=tuple(tuple(round(float(v), 6) for v in row) for row in kernel),
        colour=tuple(tuple(round(float(v), 6) for v in row) for row in colour),
        luma_levels=tuple(centres),
        std_levels=tuple(round(v, 4) for v in values),
        seed=seed,
        fitted_on={"flat_patches": int(len(residual)), "patch": PATCH, "blur_sigma": BLUR_SIGMA},
    )


def main(argv: Sequence[str] | None = None) -> None:
    from pocketgan.config import DEFAULT_TEACHER
    from pocketgan.data.photos import training_photos
    from pocketgan.evals.fullres import FullResConfig, scaled_size, teacher_outputs
    from pocketgan.images import resize

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=int, default=1280, help="long side the teacher runs at")
    parser.add_argument("--teacher", default=DEFAULT_TEACHER)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="grain JSON to write")
    args = parser.parse_args(argv)
    named = [(n, resize(i, scaled_size(i.shape[:2], args.resolution))) for n, i in training_photos()]
    images = [image for _, image in named]
    config = FullResConfig(artifacts="", resolution=args.resolution, teacher=args.teacher)
    teachers, section = teacher_outputs(config, images)
    model = fit_grain(list(zip(images, teachers, strict=True)), seed=args.seed)
    data = model.to_json()
    data["fitted_on"] |= {
        "photos": [name for name, _ in named],
        "split": "train",
        "resolution": args.resolution,
        "teacher": {"spec": section["spec"], "hash": section["hash"]},
        "created": now_iso(),
    }
    atomic_write_json(Path(args.out), data)
    print(json.dumps({k: data[k] for k in ("luma_levels", "std_levels", "colour")}, indent=None))


if __name__ == "__main__":
    main()
