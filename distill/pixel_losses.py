"""Pixel losses between a student's output and the teacher's, on (N, 3, H, W) floats in [-1, 1].

Terms: `l1`; `ssim` (1 - SSIM with an 11x11 Gaussian window, data range 2, differentiable);
`low_pass` (L1 between 4x-average-pooled images: the global/colour grade); `high_pass` (L1 between the
images minus their 3x3 box blur: texture and edges); `mse`. `PixelLoss(**weights)` returns
(total, {name: value}) for the terms whose weight is non-zero.

Example: python -c "import torch; from distill.pixel_losses import PixelLoss; x = torch.rand(1, 3, 32, 32) * 2 - 1; print(PixelLoss(l1=1, ssim=0.5)(x, x.flip(-1)))"
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    """A normalised 1-D Gaussian as a depthwise (channels, 1, 1, size) kernel (applied along W, then H)."""
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g.view(1, 1, 1, size).expand(channels, 1, 1, size).contiguous()


def ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Mean SSIM over the batch (Gaussian window, valid region, per channel), like skimage's gaussian SSIM."""
    channels = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2]) | 1  # odd, no larger than the image
    kernel = _gaussian_window(window, sigma, channels, x.device, x.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable: 2k instead of k*k MACs per pixel
        t = F.conv2d(t, kernel, groups=channels)
        return F.conv2d(t, kernel.transpose(2, 3), groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x * mu_x
    syy = blur(y * y) - mu_y * mu_y
    sxy = blur(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    return (numerator / denominator).mean()


def low_pass(x: torch.Tensor, factor: int = 4) -> torch.Tensor:
    return F.avg_pool2d(x, factor) if min(x.shape[-2:]) >= factor else x.mean(dim=(2, 3), keepdim=True)


def high_pass(x: torch.Tensor) -> torch.Tensor:
    return x - F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class PixelLoss(nn.Module):
    """Weighted sum of pixel terms. forward(student, teacher) -> (total, {name: float value})."""

    def __init__(
        self,
        l1: float = 1.0,
        ssim: float = 0.0,
        low_pass: float = 0.0,
        high_pass: float = 0.0,
        mse: float = 0.0,
        low_pass_factor: int = 4,
    ):
        super().__init__()
        self.weights = {"l1": l1, "ssim": ssim, "low_pass": low_pass, "high_pass": high_pass, "mse": mse}
        for name, weight in self.weights.items():
            if not weight >= 0:
                raise ValueError(f"pixel loss weight {name} must be >= 0, got {weight!r}")
        if not any(self.weights.values()):
            raise ValueError("at least one pixel loss weight must be > 0")
        self.low_pass_factor = int(low_pass_factor)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor):
        student, teacher = student.float(), teacher.float()
        terms: dict[str, torch.Tensor] = {}
        if self.weights["l1"]:
            terms["l1"] = F.l1_loss(student, teacher)
        if self.weights["mse"]:
            terms["mse"] = F.mse_loss(student, teacher)
        if self.weights["ssim"]:
            terms["ssim"] = 1.0 - ssim(student, teacher)
        if self.weights["low_pass"]:
            f = self.low_pass_factor
            terms["low_pass"] = F.l1_loss(low_pass(student, f), low_pass(teacher, f))
        if self.weights["high_pass"]:
            terms["high_pass"] = F.l1_loss(high_pass(student), high_pass(teacher))
        total = sum(self.weights[name] * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
