"""The classic CycleGAN ResNet generator (Zhu et al. 2017), our own definition.

Layer indices match the original implementation's `nn.Sequential`, so checkpoints trained with it (such as
the `vintage` teacher's) load with `strict=True`.

Example: python -c "from pocketgan.models import build; print(build('cyclegan-resnet9'))"
"""

from __future__ import annotations

import torch
from torch import nn

from pocketgan.models.registry import register_model


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convs with InstanceNorm, plus the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)  # (N, C, H, W)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d2ngf, d4ngf, R4ngf x n_blocks, u2ngf, ungf, c7s1-3, tanh. Input/output in [-1, 1]."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7),
            nn.InstanceNorm2d(ngf, affine=True),
            nn.ReLU(True),
        ]
        for i in range(2):  # downsample: (N, ngf, H, W) -> (N, 4ngf, H/4, W/4)
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                nn.InstanceNorm2d(ngf * mult * 2, affine=True),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]  # (N, 4ngf, H/4, W/4)
        for i in range(2):  # upsample: (N, 4ngf, H/4, W/4) -> (N, ngf, H, W)
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(ngf * mult // 2, affine=True),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (N, 3, H, W) in [-1, 1]


@register_model("cyclegan-resnet9", kind="teacher")
def cyclegan_resnet9(ngf: int = 64) -> ResnetGenerator:
    return ResnetGenerator(ngf=ngf, n_blocks=9)


@register_model("cyclegan-resnet6", kind="teacher")
def cyclegan_resnet6(ngf: int = 64) -> ResnetGenerator:
    return ResnetGenerator(ngf=ngf, n_blocks=6)
