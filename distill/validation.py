"""Validation: the student vs the teacher on the validation split (never the test split), per image and as
means, beside the do-nothing baseline (the input itself). best.pt is chosen on these numbers.

PSNR and SSIM are pocketgan.metrics', like every stage's.

Example: python -c "from pocketgan.distill.validation import image_metrics; import numpy as np; print(image_metrics(np.zeros((3,8,8)), np.zeros((3,8,8))+.1))"
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pocketgan.metrics import json_ready, psnr, ssim


def image_metrics(target: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of `output` against `target`, both float (3, H, W) in [-1, 1]."""
    target, output = target.transpose(1, 2, 0), output.transpose(1, 2, 0)
    return {"psnr_db": psnr(output, target), "ssim": ssim(output, target)}


def pair_scores(target: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM, colour-grade error and texture statistics of `output` against `target` (3, H, W)."""
    from pocketgan.metrics import grade_texture

    return {
        **image_metrics(target, output),
        **grade_texture(output.transpose(1, 2, 0), target.transpose(1, 2, 0)),
    }


def baseline_scores(names: list[str], inputs: np.ndarray, targets: np.ndarray) -> dict[str, dict[str, float]]:
    """What doing nothing (the input as output) scores, per image."""
    return {n: pair_scores(t, x) for n, x, t in zip(names, inputs, targets, strict=True)}


def split_metrics(
    names: list[str],
    targets: np.ndarray,
    outputs: np.ndarray,
    baseline: dict[str, dict[str, float]],
    prefix: str,
) -> dict[str, Any]:
    """`prefix`_psnr_db/_ssim/_grade_de2000/_texture_swd means, the do-nothing baseline's, the PSNR gain over
    it, how many images score below it, and per-image numbers (each with its `identity_` baseline)."""
    per_image = {}
    for name, t, o in zip(names, targets, outputs, strict=True):
        scores = pair_scores(t, o)
        scores.update({f"identity_{key}": value for key, value in baseline[name].items()})
        scores["gain_db"] = scores["psnr_db"] - scores["identity_psnr_db"]
        per_image[name] = scores
    mean = {
        key: float(np.mean([s[key] for s in per_image.values()])) for key in next(iter(per_image.values()))
    }
    summary = {f"{prefix}_{key}": value for key, value in mean.items()}
    summary[f"{prefix}_below_baseline"] = sum(s["gain_db"] < 0 for s in per_image.values())
    summary[f"{prefix}_per_image"] = per_image
    return summary


@torch.no_grad()
def evaluate_student(
    student: torch.nn.Module,
    names: list[str],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    device: torch.device,
    baseline: dict[str, dict[str, float]],
    prefix: str = "validation",
) -> tuple[dict[str, Any], np.ndarray]:
    """split_metrics of the student on (inputs, targets), and its outputs (N, 3, H, W)."""
    was_training = student.training
    student.eval()
    outputs = student(inputs.to(device)).float().clamp(-1, 1).cpu().numpy()
    student.train(was_training)
    return split_metrics(names, targets.numpy(), outputs, baseline, prefix), outputs


def student_checkpoint(config, student: torch.nn.Module, metrics: dict[str, Any]) -> dict[str, Any]:
    """The best.pt payload (pocketgan/checkpoint.py format) for a student trained with `config`."""
    return {
        "student": config.student,
        "student_kwargs": config.student_build_kwargs(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in student.state_dict().items()},
        "config": json_ready(config.to_dict()),
        "metrics": metrics,
    }
