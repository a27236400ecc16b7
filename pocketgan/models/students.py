"""Phone-sized student generators for distillation: "mobile-resnet" and "tiny-unet".

Both map (N, 3, H, W) floats in [-1, 1] to the same shape and range, use only ops that ONNX, Core ML and
TFLite all convert (conv, depthwise conv, BatchNorm, ReLU, add, mul, mean, nearest upsample, concat, tanh,
clip), and start as the identity ("do nothing") so an untrained student already scores the do-nothing
baseline. The teacher's colour grade depends on the whole image (its InstanceNorm layers), so both carry a
cheap global-context branch: input colour moments plus globally pooled low-resolution features feed a tiny
MLP that sets (a) per-channel FiLM scales/biases of the low-resolution blocks and (b) a per-image colour
transform of the input (a 3x9 mix of RGB, RGB^2 and the cross terms, plus a bias) — the "global grade". The
convolutional decoder adds the local part (texture, edges) as a tanh-bounded residual; the sum is clipped.

H and W must be divisible by 4.

Example: python -c "from pocketgan.models import build; from pocketgan.flops import count_macs; print(count_macs(build('mobile-resnet', width=16), 256))"
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pocketgan.models import register_model

NORMS = ("batch", "none")


def _norm(channels: int, norm: str) -> nn.Module:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()


class SeparableConv(nn.Module):
    """Depthwise 3x3 (zero padding, optional stride) then pointwise 1x1, norm, optional ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, norm: str = "none", act: bool = True):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=norm == "none")
        self.norm = _norm(cout, norm)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.pointwise(self.depthwise(x))))


class ConvBlock(nn.Module):
    """Plain 3x3 conv (zero padding), norm, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, norm: str = "none"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=norm == "none")
        self.norm = _norm(cout, norm)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ResidualBlock(nn.Module):
    """Two separable convs with a FiLM (per-image scale/bias) between them, plus the identity."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.conv1 = SeparableConv(channels, channels, norm=norm, act=False)
        self.conv2 = SeparableConv(channels, channels, norm=norm, act=False)

    def forward(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x) * scale + bias)  # scale, bias: (N, C, 1, 1) from the global context
        return x + self.conv2(h)


def _moments(x: torch.Tensor) -> torch.Tensor:
    """Per-image colour statistics of the input: channel means and second moments, (N, 6, 1, 1)."""
    return torch.cat([x.mean(dim=(2, 3), keepdim=True), (x * x).mean(dim=(2, 3), keepdim=True)], dim=1)


def _colour_basis(x: torch.Tensor) -> torch.Tensor:
    """(N, 9, H, W): R, G, B, R^2, G^2, B^2, RG, GB, BR — what the per-image colour transform mixes."""
    shifted = torch.cat([x[:, 1:3], x[:, 0:1]], dim=1)  # G, B, R
    return torch.cat([x, x * x, x * shifted], dim=1)


class GlobalContext(nn.Module):
    """Global pooling -> tiny MLP (1x1 convs on a 1x1 map) -> FiLM params and a per-image colour transform.

    The output layer starts at zero: FiLM scale 1, bias 0, colour transform = identity.
    """

    N_BASIS = 9

    def __init__(self, feature_channels: int, film_channels: list[int], hidden: int):
        super().__init__()
        self.film_channels = list(film_channels)
        n_out = 2 * sum(self.film_channels) + 3 * self.N_BASIS + 3
        self.mlp = nn.Sequential(
            nn.Conv2d(feature_channels + 6, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, n_out, 1),
        )
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)
        # A fixed grouped 1x1 conv sums each output channel's 9 weighted basis terms (export-friendly matmul).
        self.register_buffer("group_sum", torch.ones(3, self.N_BASIS, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor, features: torch.Tensor):
        pooled = torch.cat([_moments(x), features.mean(dim=(2, 3), keepdim=True)], dim=1)  # (N, C+6, 1, 1)
        params = self.mlp(pooled)  # (N, n_out, 1, 1)
        films, start = [], 0
        for channels in self.film_channels:
            scale = params[:, start : start + channels] + 1.0
            bias = params[:, start + channels : start + 2 * channels]
            films.append((scale, bias))
            start += 2 * channels
        mix = params[:, start : start + 3 * self.N_BASIS]  # (N, 27, 1, 1): 3 output channels x 9 basis terms
        shift = params[:, start + 3 * self.N_BASIS : start + 3 * self.N_BASIS + 3]  # (N, 3, 1, 1)
        basis = _colour_basis(x)  # (N, 9, H, W)
        repeated = torch.cat([basis, basis, basis], dim=1)  # (N, 27, H, W)
        delta = F.conv2d(repeated * mix, self.group_sum, groups=3)  # (N, 3, H, W)
        return films, x + delta + shift


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def _local_head(channels: int) -> nn.Conv2d:
    head = nn.Conv2d(channels, 3, 1)
    nn.init.zeros_(head.weight)  # start as "do nothing": no local residual
    nn.init.zeros_(head.bias)
    return head


@register_model("mobile-resnet", kind="student")
class MobileResNet(nn.Module):
    """Depthwise-separable residual generator with global context and an identity input skip.

    Shapes for a 256x256 input and width w:
      stem   3x3 conv 3->w            (N, w, 256, 256)
      down1  sep conv stride 2 w->2w  (N, 2w, 128, 128)
      down2  sep conv stride 2 2w->4w (N, 4w, 64, 64)
      context: input moments (6) + pooled down2 features (4w) -> MLP -> FiLM per block + colour transform
      blocks n_blocks x residual(4w) with FiLM             (N, 4w, 64, 64)
      up1    nearest x2 + sep conv 4w->2w, + down1 skip   (N, 2w, 128, 128)
      up2    nearest x2 + sep conv 2w->w, + stem skip     (N, w, 256, 256)
      head   1x1 conv w->3, tanh -> local residual        (N, 3, 256, 256)
      out    clip(colour_transform(x) + local, -1, 1)
    """

    def __init__(self, width: int = 16, n_blocks: int = 4, norm: str = "none", context_hidden: int = 64):
        super().__init__()
        w = int(width)
        self.stem = ConvBlock(3, w, norm=norm)
        self.down1 = SeparableConv(w, 2 * w, stride=2, norm=norm)
        self.down2 = SeparableConv(2 * w, 4 * w, stride=2, norm=norm)
        self.blocks = nn.ModuleList(ResidualBlock(4 * w, norm) for _ in range(int(n_blocks)))
        self.context = GlobalContext(4 * w, [4 * w] * int(n_blocks), int(context_hidden))
        self.up1 = SeparableConv(4 * w, 2 * w, norm=norm)
        self.up2 = SeparableConv(2 * w, w, norm=norm)
        self.head = _local_head(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.stem(x)  # (N, w, H, W)
        s1 = self.down1(s0)  # (N, 2w, H/2, W/2)
        h = self.down2(s1)  # (N, 4w, H/4, W/4)
        films, graded = self.context(x, h)
        for block, (scale, bias) in zip(self.blocks, films, strict=True):
            h = block(h, scale, bias)
        h = self.up1(_upsample(h)) + s1  # (N, 2w, H/2, W/2)
        h = self.up2(_upsample(h)) + s0  # (N, w, H, W)
        return torch.clamp(graded + torch.tanh(self.head(h)), -1.0, 1.0)


@register_model("tiny-unet", kind="student")
class TinyUNet(nn.Module):
    """A small U-Net of plain 3x3 convs (concat skips), global context at the bottom, identity input skip.

    Shapes for a 256x256 input and width w:
      enc0  conv 3->w, conv w->w          (N, w, 256, 256)
      enc1  conv stride 2 w->2w           (N, 2w, 128, 128)
      enc2  conv stride 2 2w->4w, conv    (N, 4w, 64, 64)
      context: input moments + pooled enc2 -> FiLM on the bottleneck + colour transform
      dec1  nearest x2, concat enc1, conv 6w->2w   (N, 2w, 128, 128)
      dec0  nearest x2, concat enc0, conv 3w->w    (N, w, 256, 256)
      head  1x1 conv w->3, tanh -> local residual; out = clip(colour_transform(x) + local, -1, 1)
    """

    def __init__(self, width: int = 8, norm: str = "none", context_hidden: int = 64):
        super().__init__()
        w = int(width)
        self.enc0 = nn.Sequential(ConvBlock(3, w, norm=norm), ConvBlock(w, w, norm=norm))
        self.enc1 = ConvBlock(w, 2 * w, stride=2, norm=norm)
        self.enc2 = ConvBlock(2 * w, 4 * w, stride=2, norm=norm)
        self.bottleneck = ConvBlock(4 * w, 4 * w, norm=norm)
        self.context = GlobalContext(4 * w, [4 * w], int(context_hidden))
        self.dec1 = ConvBlock(6 * w, 2 * w, norm=norm)
        self.dec0 = ConvBlock(3 * w, w, norm=norm)
        self.head = _local_head(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(x)  # (N, w, H, W)
        e1 = self.enc1(e0)  # (N, 2w, H/2, W/2)
        e2 = self.enc2(e1)  # (N, 4w, H/4, W/4)
        films, graded = self.context(x, e2)
        scale, bias = films[0]
        h = e2 + self.bottleneck(e2) * scale + bias
        h = self.dec1(torch.cat([_upsample(h), e1], dim=1))  # (N, 2w, H/2, W/2)
        h = self.dec0(torch.cat([_upsample(h), e0], dim=1))  # (N, w, H, W)
        return torch.clamp(graded + torch.tanh(self.head(h)), -1.0, 1.0)
