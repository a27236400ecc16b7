"""Tiny seeded generators for the export tests (factories usable as `export_nets:NAME` model specs)."""

import torch
from torch import nn


class TinyStudent(nn.Module):
    """Conv, depthwise conv, BatchNorm, upsample + conv, a global-mean context branch and tanh (~2k params)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.down = nn.Sequential(
            nn.Conv2d(width, width, 3, stride=2, padding=1, groups=width),
            nn.Conv2d(width, 2 * width, 1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.context = nn.Conv2d(2 * width, 2 * width, 1)
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * width, width, 3, padding=1)
        )
        self.head = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(self.stem(x))  # (N, 2w, H/2, W/2)
        gate = torch.sigmoid(self.context(h.mean(dim=(2, 3), keepdim=True)))  # (N, 2w, 1, 1)
        return torch.tanh(self.head(torch.relu(self.up(h * gate))) + x)  # (N, 3, H, W)


def tiny_student() -> nn.Module:
    torch.manual_seed(0)
    model = TinyStudent()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):  # non-trivial running stats, so folding is tested
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.8, 1.2)
            module.bias.data.uniform_(-0.1, 0.1)
    return model.eval()


class TinyUpsampler(nn.Module):
    """The CycleGAN upsampler: ConvTranspose2d(k3, s2, p1, output_padding 1) after a stride-2 conv."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.up(torch.relu(self.down(x))))


def tiny_upsampler() -> nn.Module:
    torch.manual_seed(1)
    return TinyUpsampler().eval()


class WithRecurrence(nn.Module):
    """Runs fine in torch but holds a GRU layer no exporter takes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.memory = nn.GRU(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x))


def with_recurrence() -> nn.Module:
    torch.manual_seed(2)
    return WithRecurrence().eval()


class ColourBasis(nn.Module):
    """A full-resolution colour transform over channel products (slices + concat), like mobile-resnet's."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Conv2d(9, 3, 1)
        self.refine = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = torch.cat([x[:, 1:3], x[:, 0:1]], dim=1)  # G, B, R
        basis = torch.cat([x, x * x, x * shifted], dim=1)  # (N, 9, H, W)
        return torch.tanh(x + 0.3 * self.refine(self.mix(basis)))


def colour_basis() -> nn.Module:
    torch.manual_seed(3)
    return ColourBasis().eval()


class Spiky(nn.Module):
    """The deliberately fragile layer: a 1x1 conv whose output is 1000x larger at one activation.

    A per-tensor int8 scale that holds that peak rounds every other activation to zero.
    """

    def __init__(self, channels: int, size: int = 32):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        gain = torch.ones(1, channels, size, size)
        gain[:, 0, size // 2, size // 2] = 1000.0  # 1 of 8192 activations at 32 px
        self.register_buffer("gain", gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.gain


class FragileNet(nn.Module):
    """stem -> spiky (huge-range activation) -> mix -> head, plus the input: int8 fails parity because of spiky."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.spiky = Spiky(width)
        self.mix = nn.Conv2d(width, width, 3, padding=1)
        self.head = nn.Conv2d(width, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # 32 x 32 only (spiky's gain map)
        h = torch.relu(self.stem(x))  # (N, w, H, W)
        h = torch.relu(self.mix(self.spiky(h)))  # spiky: (N, w, H, W), one activation 1000x the rest
        return torch.tanh(x + self.head(h))


def fragile_net() -> nn.Module:
    torch.manual_seed(4)
    model = FragileNet()
    with torch.no_grad():  # mix reads spiky's channel 0 at 1/1000: its peak reaches mix at a normal size
        model.mix.weight[:, 0] *= 1e-3
    return model.eval()


def tiny_context_student() -> nn.Module:
    """The real patch-resnet student at width 8 (forward(x, thumb)), every weight random, so the local path
    and the thumbnail-driven context both matter."""
    from pocketgan.models import build

    torch.manual_seed(5)
    model = build("patch-resnet", width=8, n_blocks=1, context_width=8, context_hidden=8).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.2)
    return model
