"""Fidelity numbers: PSNR and SSIM (scikit-image) per image and averaged, the do-nothing baseline, MACs.

Conventions (INTERFACES.md): images are float HxWx3 in [-1, 1], data_range = 2.0. Identical images have
infinite PSNR, which JSON cannot hold: they score PSNR_CAP_DB instead.

Example: python -c "from evals.fidelity import psnr; import numpy as np; print(psnr(np.zeros((8,8,3)), np.ones((8,8,3))*.1))"
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DATA_RANGE = 2.0
PSNR_CAP_DB = 100.0
UNAVAILABLE_WEIGHTS = "unavailable: needs local weights (no downloads here)"


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of float HxWx3 images in [-1, 1]."""
    from skimage.metrics import peak_signal_noise_ratio

    output, reference = np.asarray(output, np.float64), np.asarray(reference, np.float64)
    if np.array_equal(output, reference):
        return PSNR_CAP_DB
    return float(peak_signal_noise_ratio(reference, output, data_range=DATA_RANGE))


def ssim(output: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of float HxWx3 images in [-1, 1] (channels last)."""
    from skimage.metrics import structural_similarity

    output, reference = np.asarray(output, np.float64), np.asarray(reference, np.float64)
    win_size = min(7, *[s if s % 2 else s - 1 for s in output.shape[:2]])
    return float(
        structural_similarity(reference, output, channel_axis=-1, data_range=DATA_RANGE, win_size=win_size)
    )


def max_abs(output: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(output, np.float64) - np.asarray(reference, np.float64))))


def compare_images(
    outputs: Sequence[np.ndarray], references: Sequence[np.ndarray], names: Sequence[str]
) -> dict[str, Any]:
    """PSNR, SSIM and max-abs per image (by name) and their mean (max for max-abs)."""
    if not (len(outputs) == len(references) == len(names)):
        raise ValueError("outputs, references and names differ in length")
    per_image = {
        name: {"psnr_db": psnr(out, ref), "ssim": ssim(out, ref), "max_abs": max_abs(out, ref)}
        for name, out, ref in zip(names, outputs, references, strict=True)
    }
    return {
        "psnr_db": float(np.mean([v["psnr_db"] for v in per_image.values()])),
        "ssim": float(np.mean([v["ssim"] for v in per_image.values()])),
        "max_abs": float(max(v["max_abs"] for v in per_image.values())),
        "per_image": per_image,
    }


def identity_baseline(
    inputs: Sequence[np.ndarray], teacher_outputs: Sequence[np.ndarray], names: Sequence[str]
) -> dict[str, Any]:
    """What a student that returns its input scores against the teacher."""
    return compare_images(inputs, teacher_outputs, names)


def model_cost(model, size: int) -> dict[str, int]:
    """Parameters and MACs of a torch module at size x size, counted the one PocketGAN way."""
    from pocketgan.flops import count_macs, count_params  # imports torch

    return {"params": int(count_params(model)), "macs": int(count_macs(model, size))}


def lpips_distance(model_path: str | None, outputs, references) -> float | str:
    """Mean LPIPS from a local ONNX model taking (x, y) NCHW in [-1, 1]; no weights -> a reason string."""
    if not model_path:
        return UNAVAILABLE_WEIGHTS
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if len(names) != 2:
        return f"unavailable: {model_path} must take two image inputs (x, y), it takes {len(names)}"
    distances = []
    for out, ref in zip(outputs, references, strict=True):
        feed = {names[0]: out.transpose(2, 0, 1)[None].astype(np.float32)}
        feed[names[1]] = ref.transpose(2, 0, 1)[None].astype(np.float32)
        distances.append(float(np.asarray(session.run(None, feed)[0]).mean()))
    return float(np.mean(distances))


def frechet_distance(model_path: str | None, outputs, references) -> float | str:
    """FID between two image sets from a local ONNX feature model (image NCHW [-1, 1] -> (1, D))."""
    if not model_path:
        return UNAVAILABLE_WEIGHTS
    if len(outputs) < 2:
        return "unavailable: FID needs at least 2 images"
    import onnxruntime as ort
    from scipy import linalg

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def features(images):
        rows = [session.run(None, {name: im.transpose(2, 0, 1)[None].astype(np.float32)})[0] for im in images]
        return np.concatenate([np.asarray(r, np.float64).reshape(1, -1) for r in rows])

    a, b = features(outputs), features(references)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b - 2 * root))
