"""Tiny seeded torch models for the coreml-reference tests, and their conversion to .mlpackage."""

from __future__ import annotations

from pathlib import Path

import coremltools as ct
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SIZE = 32
IMAGE_SCALE, IMAGE_BIAS = 2 / 255, [-1.0, -1.0, -1.0]


class TinyGenerator(nn.Module):
    """Every op family our students and the teacher convert to, at 32 px: reflect/replicate pad, conv,
    depthwise, instance/batch norm, ConvTranspose, bilinear/nearest upsampling, pixel shuffle, global mean,
    tanh."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.stem = nn.Conv2d(3, 8, 3)
        self.norm = nn.InstanceNorm2d(8, affine=True)
        self.depthwise = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.batch_norm = nn.BatchNorm2d(8)
        self.pointwise = nn.Conv2d(8, 16, 1)
        self.up = nn.ConvTranspose2d(16, 8, 3, 2, 1, output_padding=1)
        self.head = nn.Conv2d(16, 3, 3, padding=1, padding_mode="replicate")

    def forward(self, x):
        y = F.relu(self.norm(self.stem(self.pad(x))))  # (N, 8, H, W)
        z = F.leaky_relu(self.batch_norm(self.depthwise(y)), 0.2)  # (N, 8, H/2, W/2)
        z = self.pointwise(z) * torch.sigmoid(z.mean((2, 3), keepdim=True)).repeat(
            1, 2, 1, 1
        )  # (N, 16, H/2, W/2)
        bilinear = F.interpolate(z, scale_factor=2, mode="bilinear", align_corners=False)[:, :8]
        nearest = F.interpolate(z, scale_factor=2, mode="nearest")[:, 8:]
        h = torch.cat([self.up(z) + bilinear, nearest - y], 1)  # (N, 16, H, W)
        shuffled = F.pixel_shuffle(z, 2)[:, :3]  # (N, 3, H, W), as patch-resnet's head
        return torch.tanh(self.head(h) + 0.1 * shuffled) + torch.clamp(x, -0.5, 0.5) / 2.0


class Overflow(nn.Module):
    """Activations near 1e6 between two convs: fine in fp32, inf/NaN once rounded to fp16 (max 65504)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        big = self.up(x) * 1e6  # (N, 4, H, W), |values| ~ 1e6
        centered = big - big.mean((2, 3), keepdim=True)
        return torch.tanh(self.down(centered) * 1e-6)


def seeded(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for parameter in module.parameters():
        nn.init.normal_(parameter, std=0.3)
    for buffer_name, buffer in module.named_buffers():
        if buffer_name.endswith("running_mean"):
            buffer.normal_(0, 0.1)
        elif buffer_name.endswith("running_var"):
            buffer.uniform_(0.5, 1.5)
    return module.eval()


def convert(module: nn.Module, path: Path, precision: str = "fp32", target=None, size: int = SIZE) -> Path:
    x = torch.zeros(1, 3, size, size)
    program = torch.export.export(module, (x,)).run_decompositions({})
    model = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=target or ct.target.iOS16,
        inputs=[
            ct.ImageType(
                name="input",
                shape=(1, 3, size, size),
                scale=IMAGE_SCALE,
                bias=IMAGE_BIAS,
                color_layout=ct.colorlayout.RGB,
            )
        ],
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
    )
    model.save(str(path))
    return path


def torch_reference(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()
