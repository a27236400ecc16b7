"""Distillation losses beyond pixels: feature matching through learned 1x1 adapters, and a PatchGAN game.

Pixel terms (L1, SSIM, low/high-pass) live in `distill.pixel_losses.PixelLoss`.

Example: python -c "from distill.losses import FeatureAdapters; print(FeatureAdapters([('a', 'b')], {'b': 8}, {'a': 16}))"
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from pocketgan.distill.pixel_losses import PixelLoss
from pocketgan.errors import UsageError


def build_pixel_loss(weights: dict[str, float]) -> nn.Module:
    """`PixelLoss(**weights)`, with a UsageError naming the accepted weights when a name is unknown."""
    accepted = [
        name
        for name, parameter in inspect.signature(PixelLoss).parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]
    unknown = sorted(set(weights) - set(accepted))
    if unknown:
        raise UsageError(f"unknown pixel_loss weights {unknown}; PixelLoss takes: {', '.join(accepted)}")
    return PixelLoss(**weights)


class FeatureAdapters(nn.Module):
    """One learned 1x1 conv per (teacher layer, student layer) pair: student channels -> teacher channels.

    The loss is the mean squared error between the adapted student feature and the teacher feature
    (resized bilinearly to the student's spatial size when they differ), averaged over pairs.
    """

    def __init__(
        self, pairs: list[tuple[str, str]], student_channels: dict[str, int], teacher_channels: dict[str, int]
    ):
        super().__init__()
        self.pairs = [tuple(pair) for pair in pairs]
        self.adapters = nn.ModuleList(
            nn.Conv2d(student_channels[student], teacher_channels[teacher], 1)
            for teacher, student in self.pairs
        )

    def forward(self, student_features: dict[str, torch.Tensor], teacher_features: dict[str, torch.Tensor]):
        total = 0.0
        for (teacher_name, student_name), adapter in zip(self.pairs, self.adapters, strict=True):
            student = adapter(student_features[student_name].float())
            teacher = teacher_features[teacher_name].detach().float()
            if teacher.shape[-2:] != student.shape[-2:]:
                teacher = F.interpolate(
                    teacher, size=student.shape[-2:], mode="bilinear", align_corners=False
                )
            total = total + F.mse_loss(student, teacher)
        return total / max(1, len(self.pairs))


def feature_channels(features: dict[str, torch.Tensor], role: str) -> dict[str, int]:
    """Channel count of each tapped feature; UsageError for a layer whose output is not (N, C, H, W)."""
    channels = {}
    for name, tensor in features.items():
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
            raise UsageError(f"{role} layer {name!r} does not output an (N, C, H, W) tensor")
        channels[name] = int(tensor.shape[1])
    return channels


def discriminator_input(inputs: torch.Tensor, outputs: torch.Tensor, conditional: bool) -> torch.Tensor:
    return torch.cat([inputs, outputs], dim=1) if conditional else outputs


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN: teacher outputs toward 1, student outputs toward 0."""
    return 0.5 * ((real_scores.float() - 1).pow(2).mean() + fake_scores.float().pow(2).mean())


def generator_adversarial_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN: the student wants its outputs scored as real."""
    return (fake_scores.float() - 1).pow(2).mean()
