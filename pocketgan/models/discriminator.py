"""PatchGAN discriminator (Isola et al. 2017): a grid of real/fake scores, one per overlapping patch.

Used by distillation's adversarial loss: teacher outputs are "real", student outputs "fake". Conditional
by default (it sees the input image beside the output), so it judges the translation, not only the style.

Example: python -c "from pocketgan.models import build; print(build('patchgan', width=32))"
"""

from __future__ import annotations

import torch
from torch import nn

from pocketgan.models.registry import register_model


class PatchDiscriminator(nn.Module):
    """Strided 4x4 convs with LeakyReLU; (N, C, H, W) -> (N, 1, H/2^n, W/2^n) raw scores (no sigmoid)."""

    def __init__(self, in_channels: int = 6, width: int = 32, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        if norm not in ("instance", "batch", "none"):
            raise ValueError(f"norm must be instance, batch or none, got {norm!r}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        channels = width
        for i in range(1, n_layers + 1):
            out_channels = width * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers.append(nn.Conv2d(channels, out_channels, 4, stride=stride, padding=1, bias=norm == "none"))
            if norm == "instance":
                layers.append(nn.InstanceNorm2d(out_channels, affine=True))
            elif norm == "batch":
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(0.2))
            channels = out_channels
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register_model("patchgan", kind="discriminator")
def patchgan(width: int = 32, n_layers: int = 3, conditional: bool = True, norm: str = "instance"):
    return PatchDiscriminator(in_channels=6 if conditional else 3, width=width, n_layers=n_layers, norm=norm)
