"""Fit the teacher's grain statistics (pocketgan.runtime.grain.GrainModel) on training photos at full size.

The teacher runs on each training photo scaled to `--resolution` (long side; its outputs are cached as
`pocketgan eval --resolution` caches them). Only flat 32x32 patches are used (the photo's own fine detail
below FLAT_ENERGY), so what is measured is what the teacher adds, not what it keeps: their high-pass
residual (output minus a Gaussian blur, sigma 2) gives the spectrum (-> kernel), the channel covariance
(-> colour matrix) and the standard deviation by luminance (-> std table). Validation and test photos are
never read here.

With `--artifact` (the student's export), a second table is fitted against the student's own outputs
(`Session.run` without grain) on the same photos: per 16x16 block of the output, binned by its mean
luminance and its own detail, the teacher's extra detail there on average (as grain variance; none where
the teacher has less). The runtime then uses it instead of "flat-patch std less the block's detail": the
teacher's grain also shows on moderately detailed areas, which the subtraction rule left bare.

Example: python -m pocketgan.distill.grain --resolution 1280 --artifact dist/student.fp32.onnx \
             --out pocketgan/zoo/vintage-mobile/grain.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from pocketgan.images import to_float
from pocketgan.manifest import atomic_write_json, now_iso
from pocketgan.runtime.grain import (
    LUMA_BIN,
    STRIP_ROWS,
    GrainModel,
    block_statistics,
    gradient_per_variance,
    luminance,
)

PATCH = 32
FLAT_ENERGY = 2e-4  # mean squared high-pass of the photo's patch (values in [-1, 1]): ~1.8 levels rms
BLUR_SIGMA = 2.0
KERNEL_SIDE = 15
MIN_PATCHES = 20  # a luminance bin with fewer flat patches is interpolated from its neighbours
# Block detail bins of the deficit table (runtime.grain.block_statistics units: squared levels); the last
# edge stands for "any more".
DETAIL_EDGES = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 1e9)
MIN_BLOCKS = 10  # a (luminance, detail) bin with fewer blocks gets no grain


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
    luma = luminance((teacher + 1.0) * 127.5)
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


def _statistics(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean luminance, detail) of every block, strip by strip exactly as the runtime sees them."""
    stats = [block_statistics(image[top : top + STRIP_ROWS]) for top in range(0, image.shape[0], STRIP_ROWS)]
    return np.concatenate([m.ravel() for m, _ in stats]), np.concatenate([d.ravel() for _, d in stats])


def fit_deficit(model: GrainModel, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> GrainModel:
    """`model` with a deficit table: for each (mean luminance, detail) bin of a student's output blocks, the
    grain std that makes up the teacher's extra detail there on average (teacher's block detail minus the
    output's, as grain variance; none where the teacher has less). pairs: (teacher output float in [-1, 1],
    the student's uint8 output, as `Session.run(grain=0)` gives it) at the same size."""
    rows, columns = 256 // LUMA_BIN, len(DETAIL_EDGES) - 1
    totals, counts = np.zeros((rows, columns)), np.zeros((rows, columns))
    for teacher, output in pairs:
        luma, detail = _statistics(output)
        _, teacher_detail = _statistics((teacher + 1.0) * 127.5)
        row = np.clip(np.rint(luma).astype(int) // LUMA_BIN, 0, rows - 1)
        column = np.searchsorted(np.asarray(DETAIL_EDGES[1:-1]), detail, side="right")
        np.add.at(totals, (row, column), teacher_detail - detail)
        np.add.at(counts, (row, column), 1)
    known = counts >= MIN_BLOCKS
    deficit = np.zeros((rows, columns))
    for row in np.flatnonzero(known.any(axis=1)):  # bins with too few blocks: interpolated along the row
        seen = np.flatnonzero(known[row])
        deficit[row] = np.interp(np.arange(columns), seen, totals[row, seen] / counts[row, seen])
    std = np.sqrt(deficit.clip(0) / gradient_per_variance(model))
    return replace(
        model,
        detail_edges=DETAIL_EDGES,
        deficit_std=tuple(tuple(round(float(v), 3) for v in row) for row in std),
        fitted_on={**model.fitted_on, "deficit_blocks": int(counts.sum())},
    )


def main(argv: Sequence[str] | None = None) -> None:
    from pocketgan.config import DEFAULT_TEACHER
    from pocketgan.data.photos import training_photos
    from pocketgan.evals.fullres import scaled_size, teacher_outputs
    from pocketgan.images import resize

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=int, default=1280, help="long side the teacher runs at")
    parser.add_argument("--teacher", default=DEFAULT_TEACHER)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--artifact",
        help="the student's artifact (e.g. its fp32 ONNX): also fit the deficit table against its outputs",
    )
    parser.add_argument("--out", required=True, help="grain JSON to write")
    args = parser.parse_args(argv)
    named = [(n, resize(i, scaled_size(i.shape[:2], args.resolution))) for n, i in training_photos()]
    images = [image for _, image in named]
    teachers, section = teacher_outputs(
        images, teacher=args.teacher, resolution=args.resolution, progress=True
    )
    model = fit_grain(list(zip(images, teachers, strict=True)), seed=args.seed)
    if args.artifact:
        from pocketgan import runtime

        with runtime.load(args.artifact, grain=0.0) as session:
            outputs = [session.run(image) for image in images]
        model = fit_deficit(model, list(zip(teachers, outputs, strict=True)))
        model.fitted_on["deficit_artifact"] = {"name": Path(args.artifact).name, "sha256": session.sha256}
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
