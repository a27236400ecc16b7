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


def split_metrics(
    names: list[str], inputs: np.ndarray, targets: np.ndarray, outputs: np.ndarray, prefix: str
) -> dict[str, Any]:
    """`prefix`_psnr_db/_ssim means, the do-nothing baseline, the gain over it, how many images score below
    it, and per-image numbers; arrays are float (N, 3, H, W) in [-1, 1]."""
    per_image = {}
    for name, x, t, o in zip(names, inputs, targets, outputs, strict=True):
        scores = image_metrics(t, o)
        scores["identity_psnr_db"] = image_metrics(t, x)["psnr_db"]
        scores["gain_db"] = scores["psnr_db"] - scores["identity_psnr_db"]
        per_image[name] = scores
    mean = {
        key: float(np.mean([s[key] for s in per_image.values()])) for key in next(iter(per_image.values()))
    }
    return {
        f"{prefix}_psnr_db": mean["psnr_db"],
        f"{prefix}_ssim": mean["ssim"],
        f"{prefix}_identity_psnr_db": mean["identity_psnr_db"],
        f"{prefix}_gain_db": mean["gain_db"],
        f"{prefix}_below_baseline": sum(s["gain_db"] < 0 for s in per_image.values()),
        f"{prefix}_per_image": per_image,
    }


@torch.no_grad()
def evaluate_student(
    student: torch.nn.Module,
    names: list[str],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    device: torch.device,
    prefix: str = "validation",
) -> tuple[dict[str, Any], np.ndarray]:
    """split_metrics of the student on (inputs, targets), and its outputs (N, 3, H, W)."""
    was_training = student.training
    student.eval()
    outputs = student(inputs.to(device)).float().clamp(-1, 1).cpu().numpy()
    student.train(was_training)
    return split_metrics(names, inputs.numpy(), targets.numpy(), outputs, prefix), outputs


def student_checkpoint(config, student: torch.nn.Module, metrics: dict[str, Any]) -> dict[str, Any]:
    """The best.pt payload (pocketgan/checkpoint.py format) for a student trained with `config`."""
    return {
        "student": config.student,
        "student_kwargs": config.student_build_kwargs(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in student.state_dict().items()},
        "config": json_ready(config.to_dict()),
        "metrics": metrics,
    }
