"""Held-out evaluation: the student vs the teacher on the held-out portraits (PSNR/SSIM per FACTS.md).

PSNR and SSIM are pocketgan.metrics', like every stage's.

Example: pocketgan distill --preset quick --steps 20 --out runs/heldout-check   (metrics.jsonl has heldout_psnr_db)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pocketgan.metrics import compare_images, json_ready


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
    targets_hwc = list(targets.numpy().transpose(0, 2, 3, 1))
    vs_teacher = compare_images(list(outputs.transpose(0, 2, 3, 1)), targets_hwc, names)
    identity = compare_images(list(inputs.numpy().transpose(0, 2, 3, 1)), targets_hwc, names)
    per_image = vs_teacher["per_image"]
    metrics = {
        "heldout_psnr_db": vs_teacher["psnr_db"],
        "heldout_ssim": vs_teacher["ssim"],
        "identity_psnr_db": identity["psnr_db"],
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
        "config": json_ready(config.to_dict()),
        "metrics": metrics,
    }
