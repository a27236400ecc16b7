"""Held-out evaluation: the student vs the teacher on the held-out portraits (PSNR/SSIM per FACTS.md).

PSNR and SSIM are scikit-image's on HxWx3 floats in [-1, 1] with data_range=2.0, like every stage.

Example: python -c "from distill.heldout import image_metrics; import numpy as np; print(image_metrics(np.zeros((3,8,8)), np.zeros((3,8,8))+.1))"
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pocketgan.distill.runfolder import json_safe


def image_metrics(target: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of `output` against `target`, both float (3, H, W) in [-1, 1]."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    target, output = target.transpose(1, 2, 0), output.transpose(1, 2, 0)
    return {
        "psnr_db": float(peak_signal_noise_ratio(target, output, data_range=2.0)),
        "ssim": float(structural_similarity(target, output, channel_axis=2, data_range=2.0)),
    }


@torch.no_grad()
def evaluate_student(
    student: torch.nn.Module,
    names: list[str],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    device: torch.device,
) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics (means, per image, and the do-nothing baseline) and the student's outputs (N, 3, H, W)."""
    was_training = student.training
    student.eval()
    outputs = student(inputs.to(device)).float().clamp(-1, 1).cpu().numpy()
    student.train(was_training)
    per_image = {n: image_metrics(t, o) for n, t, o in zip(names, targets.numpy(), outputs, strict=True)}
    identity = [image_metrics(t, x)["psnr_db"] for t, x in zip(targets.numpy(), inputs.numpy(), strict=True)]
    metrics = {
        "heldout_psnr_db": float(np.mean([m["psnr_db"] for m in per_image.values()])),
        "heldout_ssim": float(np.mean([m["ssim"] for m in per_image.values()])),
        "identity_psnr_db": float(np.mean(identity)),
        "heldout_psnr_db_per_image": {n: m["psnr_db"] for n, m in per_image.items()},
        "heldout_ssim_per_image": {n: m["ssim"] for n, m in per_image.items()},
    }
    return metrics, outputs


def student_checkpoint(config, student: torch.nn.Module, metrics: dict[str, Any]) -> dict[str, Any]:
    """The best.pt payload (pocketgan/checkpoint.py format) for a student trained with `config`."""
    return {
        "student": config.student,
        "student_kwargs": config.student_build_kwargs(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in student.state_dict().items()},
        "config": json_safe(config.to_dict()),
        "metrics": metrics,
    }
