"""Phone-sized student generators for distillation: "patch-resnet", "mobile-resnet" and "tiny-unet".

All map (N, 3, H, W) floats in [-1, 1] to the same shape and range, use only ops that ONNX, Core ML and
TFLite all convert (conv, depthwise conv, BatchNorm, ReLU, add, mul, mean, nearest upsample, pixel shuffle,
concat, tanh, clip), and start as the identity ("do nothing") so an untrained student already scores the
do-nothing baseline. The teacher's colour grade depends on the whole image (its InstanceNorm layers), so all
carry a cheap global-context branch: input colour moments plus globally pooled low-resolution features feed
a tiny MLP that sets (a) per-channel FiLM scales/biases of the low-resolution blocks and (b) a per-image
colour transform of the input (a 3x9 mix of RGB, RGB^2 and the cross terms, plus a bias) — the "global
grade". The convolutional part adds the local part (texture, edges) as a tanh-bounded residual; the sum is
clipped.

- patch-resnet (the default, shipped): dense 3x3 convs at 1/4 resolution between a patchify stem and a
  pixel-shuffle head; compute-bound, so int8 pays off (TFLite int8 several times faster than fp32).
- mobile-resnet: depthwise-separable residual generator with full-resolution skips; fewest MACs, but
  memory-bound at full resolution, so int8 gains little on CPU.
- tiny-unet: plain 3x3 convs, concat skips.

H and W must be divisible by 4.

Example: python -c "from pocketgan.models import build; from pocketgan.flops import count_macs; print(count_macs(build('patch-resnet', width=48), 256))"
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


# The colour-transform basis per pixel, as (first factor, second factor or None for "1"): R, G, B, then
# R^2, G^2, B^2, RG, GB, BR for the quadratic transform.
COLOUR_TERMS = {
    "quadratic": [(0, None), (1, None), (2, None), (0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (2, 0)],
    "affine": [(0, None), (1, None), (2, None)],
    "none": [],
}


def _basis_convs(terms: list[tuple[int, int | None]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed 1x1 convs A, B (+ bias) with A(x) * B(x) = the basis repeated once per output channel.

    Channel r * T + t is term t for output channel r. Written as convs and one product (no slicing or
    concatenation at full resolution) so the PT2E int8 quantizer and every converter take it as is.
    """
    n = 3 * len(terms)
    first, second, second_bias = torch.zeros(n, 3, 1, 1), torch.zeros(n, 3, 1, 1), torch.zeros(n)
    for rep in range(3):
        for t, (i, j) in enumerate(terms):
            channel = rep * len(terms) + t
            first[channel, i] = 1.0
            if j is None:
                second_bias[channel] = 1.0
            else:
                second[channel, j] = 1.0
    return first, second, second_bias


class GlobalContext(nn.Module):
    """Global pooling -> tiny MLP (1x1 convs on a 1x1 map) -> FiLM params and a per-image colour transform.

    `colour` picks the per-pixel transform of the input that the MLP sets per image: "quadratic" (3x9 mix of
    RGB, RGB^2 and cross terms, plus a bias), "affine" (3x3 plus a bias) or "none". The output layer starts
    at zero: FiLM scale 1, bias 0, colour transform = identity.
    """

    def __init__(
        self,
        feature_channels: int,
        film_channels: list[int],
        hidden: int,
        colour: str = "quadratic",
        second_moments: bool = False,
    ):
        super().__init__()
        self.second_moments = bool(second_moments)
        if colour not in COLOUR_TERMS:
            raise ValueError(f"colour must be one of {tuple(COLOUR_TERMS)}, got {colour!r}")
        self.film_channels = list(film_channels)
        self.colour = colour
        terms = COLOUR_TERMS[colour]
        self.n_terms = len(terms)
        self.quadratic = any(j is not None for _, j in terms)
        n_out = 2 * sum(self.film_channels) + (3 * self.n_terms + 3 if terms else 0)
        self.mlp = nn.Sequential(
            nn.Conv2d(feature_channels * (2 if self.second_moments else 1) + 6, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, n_out, 1),
        )
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)
        first, second, second_bias = _basis_convs(terms)
        self.register_buffer("basis_first", first, persistent=False)
        self.register_buffer("basis_second", second, persistent=False)
        self.register_buffer("basis_second_bias", second_bias, persistent=False)
        # A fixed grouped 1x1 conv sums each output channel's weighted basis terms (export-friendly matmul).
        self.register_buffer("group_sum", torch.ones(3, max(self.n_terms, 1), 1, 1), persistent=False)

    def forward(self, x: torch.Tensor, features: torch.Tensor):
        stats = [_moments(x), features.mean(dim=(2, 3), keepdim=True)]
        if self.second_moments:  # what InstanceNorm in the teacher normalizes by
            stats.append((features * features).mean(dim=(2, 3), keepdim=True))
        pooled = torch.cat(stats, dim=1)  # (N, 6 + C or 2C, 1, 1)
        params = self.mlp(pooled)  # (N, n_out, 1, 1)
        films, start = [], 0
        for channels in self.film_channels:
            scale = params[:, start : start + channels] + 1.0
            bias = params[:, start + channels : start + 2 * channels]
            films.append((scale, bias))
            start += 2 * channels
        if not self.n_terms:
            return films, x
        n = 3 * self.n_terms
        mix = params[:, start : start + n]  # (N, 3T, 1, 1): 3 output channels x T basis terms
        shift = params[:, start + n : start + n + 3]  # (N, 3, 1, 1)
        repeated = F.conv2d(x, self.basis_first)  # (N, 3T, H, W)
        if self.quadratic:
            repeated = repeated * F.conv2d(x, self.basis_second, self.basis_second_bias)
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


@register_model("patch-resnet", kind="student")
class PatchResNet(nn.Module):
    """Patchify stem, dense residual body at 1/patch resolution, pixel-shuffle (sub-pixel conv) head.

    Built for int8 phone CPUs and NPUs: nearly every multiply-add is a dense 3x3 conv with >= 32 channels at
    low resolution (compute-bound, quantizes well); only the stem, the colour transform, the head and one
    add touch full-resolution pixels. A small strided context encoder feeds the global context (what the
    teacher's InstanceNorm layers see), which sets FiLM parameters of every block and the per-image colour
    transform; the blocks add a tanh-bounded local residual (texture, edges, local tone).

    Shapes for a 256x256 input, width w, patch p = 4, context width c:
      stem     conv k=p stride p 3->w, ReLU                   (N, w, 64, 64)  non-overlapping patches
      context  2 x [3x3 conv stride 2, ReLU] w->c             (N, c, 16, 16)
               input moments (6) + mean (and mean square) of the context features -> MLP
               -> FiLM scale/bias per block + colour transform of the input  (N, 3, 256, 256)
      blocks   n_blocks x [3x3 conv, FiLM, ReLU, 3x3 conv] + identity   (N, w, 64, 64)
      head     1x1 conv w->3*p*p, pixel shuffle, tanh           (N, 3, 256, 256)  starts at zero
      out      clip(colour_transform(x) + head, -1, 1)
    H and W must be divisible by patch. No norm layers: nothing to fold, nothing to drift in fp16.
    """

    def __init__(
        self,
        width: int = 48,
        n_blocks: int = 3,
        patch: int = 4,
        context_width: int = 64,
        context_depth: int = 2,
        context_hidden: int = 64,
        colour: str = "quadratic",
        second_moments: bool = False,
    ):
        super().__init__()
        w, p, c = int(width), int(patch), int(context_width)
        self.patch = p
        self.stem = nn.Conv2d(3, w, p, stride=p)
        self.blocks = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(w, w, 3, padding=1), nn.Conv2d(w, w, 3, padding=1)])
            for _ in range(int(n_blocks))
        )
        encoder: list[nn.Module] = []
        for i in range(int(context_depth)):
            encoder += [nn.Conv2d(w if i == 0 else c, c, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        self.context_encoder = nn.Sequential(*encoder)
        self.context = GlobalContext(
            c if encoder else w,
            [w] * int(n_blocks),
            int(context_hidden),
            colour=colour,
            second_moments=second_moments,
        )
        self.head = nn.Conv2d(w, 3 * p * p, 1)
        nn.init.zeros_(self.head.weight)  # start as "do nothing"
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(x))  # (N, w, H/p, W/p)
        films, graded = self.context(x, self.context_encoder(h))  # graded: (N, 3, H, W)
        for (conv1, conv2), (scale, bias) in zip(self.blocks, films, strict=True):
            h = h + conv2(F.relu(conv1(h) * scale + bias))  # scale, bias: (N, w, 1, 1)
        local = torch.tanh(F.pixel_shuffle(self.head(h), self.patch))  # (N, 3, H, W)
        return torch.clamp(graded + local, -1.0, 1.0)
