"""Phone-sized student generators for distillation: "patch-resnet", "mobile-resnet" and "tiny-unet".

All map (N, 3, H, W) floats in [-1, 1] to the same shape and range, use only ops that ONNX, Core ML and
TFLite all convert (conv, depthwise conv, BatchNorm, ReLU, add, mul, mean, nearest upsample, concat, tanh,
clip, linear, batched matmul, reshape/permute, pixel shuffle), and start as the identity ("do nothing") so
an untrained student already scores the do-nothing baseline. They are fully convolutional: H and W can be
any multiple of 4, the same weights at every size. The teacher's colour grade depends on the
whole image (its InstanceNorm layers), so all carry a cheap global-context branch: input colour moments plus
globally pooled low-resolution features feed a tiny MLP that sets (a) per-channel FiLM scales/biases of the
low-resolution blocks and (b) a per-image colour transform of the input (a 3x9 mix of RGB, RGB^2 and the
cross terms, plus a bias) — the "global grade". The convolutional part adds the local part (texture,
edges) as a tanh-bounded residual; the sum is clipped.

Global context from a thumbnail: `forward(x, thumb=None)`. The context branch (colour moments and pooled
features) reads `thumb`, a fixed-size (CONTEXT_SIZE = 256) thumbnail of the whole image
(`pocketgan.images.context_thumbnail`), so a 256² crop, a tile and a 12 MP photo of the same scene get the
same grade; the convolutional path runs on `x` at its own size. `thumb=None` means thumb = x: the output is
bit for bit what the model computed before the thumbnail existed. Training calls `model(x)` on crops, so a
crop is its own thumbnail there: it is seen at its own size, its grade from its own statistics, which is
also what the teacher (InstanceNorm over the crop) does on a crop.

- patch-resnet (the default, shipped): dense 3x3 convs at 1/4 resolution between a patchify stem and a
  pixel-shuffle head; compute-bound, so int8 pays off (with the full-resolution colour transform left in
  float; README, "Measurements behind the defaults").
- mobile-resnet: depthwise-separable residual generator with full-resolution skips; fewest MACs, but
  memory-bound at full resolution, so int8 gains little on CPU.
- tiny-unet: plain 3x3 convs, concat skips.

H and W must be divisible by 4; `thumb` has the same batch size as `x` and any size divisible by 4.

Example: python -c "from pocketgan.models import build; from pocketgan.flops import count_macs; print(count_macs(build('patch-resnet', width=48), 256))"
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from pocketgan.images import CONTEXT_SIZE
from pocketgan.models.registry import register_model

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


class ColourTransform(nn.Module):
    """The per-pixel colour transform of channels-last pixels: (N, H, W, 3) -> (N, H, W, 3).

    The basis (the terms, then a constant 1 that carries the shift) is `linear(x, A, a) * linear(x, B, b)`
    with fixed A, a, B, b; one batched matmul mixes it with the per-image matrix (N, T + 1, 3). Channels-last,
    so converters keep it free of full-resolution transposes. `float_only`: the int8 exporters leave it in
    float, where XNNPACK runs it faster than as int8 elementwise ops (README, "Measurements behind the defaults").
    """

    float_only = True

    def __init__(self, terms: list[tuple[int, int | None]]):
        super().__init__()
        n = len(terms) + 1
        first, first_bias = torch.zeros(n, 3), torch.zeros(n)
        second, second_bias = torch.zeros(n, 3), torch.zeros(n)
        for t, (i, j) in enumerate([*terms, (None, None)]):
            for weight, bias, index in ((first, first_bias, i), (second, second_bias, j)):
                if index is None:
                    bias[t] = 1.0
                else:
                    weight[t, index] = 1.0
        self.register_buffer("first", first, persistent=False)
        self.register_buffer("first_bias", first_bias, persistent=False)
        self.register_buffer("second", second, persistent=False)
        self.register_buffer("second_bias", second_bias, persistent=False)

    def forward(self, pixels: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        n, height, width, _ = pixels.shape
        basis = F.linear(pixels, self.first, self.first_bias) * F.linear(
            pixels, self.second, self.second_bias
        )
        mixed = torch.bmm(basis.reshape(n, height * width, -1), matrix)  # (N, H*W, T + 1) @ (N, T + 1, 3)
        return mixed.reshape(n, height, width, 3)


class GlobalContext(nn.Module):
    """Global pooling -> tiny MLP (1x1 convs on a 1x1 map) -> FiLM params and a per-image colour transform.

    `colour` picks the per-pixel transform of the input that the MLP sets per image: "quadratic" (3x9 mix of
    RGB, RGB^2 and cross terms, plus a bias), "affine" (3x3 plus a bias) or "none". The output layer starts
    at zero: FiLM scale 1, bias 0, colour transform = identity. Calling it on (x, features) gives the FiLM
    parameters and the colour matrix; `grade(pixels, matrix)` applies the transform to channels-last pixels.

    `normalized`: the MLP's change to the linear colour terms acts on the input standardized per channel,
    (x - mean) / std over the image, and the MLP also sees each channel's std. The teacher's InstanceNorm
    maps images of any colour cast to its own palette, y ~ G (x - mean) / std + k with G, k nearly constant;
    in these coordinates that is a change linear in (mean, std), which the MLP learns from few images,
    where the raw coordinates need G / std. Same ops, same cost at full resolution.

    `float_only`: int8 exporters keep it in float. It runs once per image on pooled 1x1 statistics (no cost),
    and its outputs set every pixel's colour: quantized to int8, a colour transform started away from the
    identity (colour_start) lost 0.45 dB in TFLite int8 on the test photos.
    """

    float_only = True

    def __init__(
        self,
        feature_channels: int,
        film_channels: list[int],
        hidden: int,
        colour: str = "quadratic",
        second_moments: bool = False,
        normalized: bool = False,
        extra_inputs: int = 0,
    ):
        super().__init__()
        self.second_moments = bool(second_moments)
        self.extra_inputs = int(extra_inputs)
        self.normalized = bool(normalized)
        if colour not in COLOUR_TERMS:
            raise ValueError(f"colour must be one of {tuple(COLOUR_TERMS)}, got {colour!r}")
        self.film_channels = list(film_channels)
        self.colour = colour
        terms = COLOUR_TERMS[colour]
        self.n_terms = len(terms)
        n_out = 2 * sum(self.film_channels) + (3 * self.n_terms + 3 if terms else 0)
        self.mlp = nn.Sequential(
            nn.Conv2d(
                feature_channels * (2 if self.second_moments else 1)
                + (9 if normalized else 6)
                + self.extra_inputs,
                hidden,
                1,
            ),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, n_out, 1),
        )
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)
        self.transform = ColourTransform(terms) if terms else None
        # The linear terms start as the identity: the MLP's mix is added to it.
        identity = torch.zeros(3, self.n_terms)
        for t, (i, j) in enumerate(terms):
            if j is None:
                identity[i, t] = 1.0
        self.register_buffer("identity", identity, persistent=False)
        if normalized and terms[:3] != [(0, None), (1, None), (2, None)]:
            raise ValueError("normalized needs the colour terms to start with R, G, B")

    def forward(self, x: torch.Tensor, features: torch.Tensor | None, extra: torch.Tensor | None = None):
        """FiLM (scale, bias) per block, and the colour matrix (N, T + 1, 3) (None for colour="none").

        `features` None (feature_channels 0): the MLP sees the input's colour statistics only. `extra`
        (N, extra_inputs, 1, 1): more numbers for the MLP (the working size, PatchResNet's size_input)."""
        moments = _moments(x)  # (N, 6, 1, 1): means, mean squares
        stats = [moments]
        if features is not None:
            stats.append(features.mean(dim=(2, 3), keepdim=True))
        if features is not None and self.second_moments:  # what InstanceNorm in the teacher normalizes by
            stats.append((features * features).mean(dim=(2, 3), keepdim=True))
        if self.normalized:
            mean = moments[:, :3]
            std = torch.sqrt(torch.clamp(moments[:, 3:] - mean * mean, min=1e-4))  # (N, 3, 1, 1)
            stats.append(std)
        if self.extra_inputs:
            stats.append(extra)
        pooled = torch.cat(stats, dim=1)  # (N, 6 + C or 2C, 1, 1)
        params = self.mlp(pooled)  # (N, n_out, 1, 1)
        films, start = [], 0
        for channels in self.film_channels:
            scale = params[:, start : start + channels] + 1.0
            bias = params[:, start + channels : start + 2 * channels]
            films.append((scale, bias))
            start += 2 * channels
        if not self.n_terms:
            return films, None
        n, count = x.shape[0], 3 * self.n_terms
        change = params[:, start : start + count].reshape(n, 3, self.n_terms)  # (N, 3, T)
        shift = params[:, start + count : start + count + 3].reshape(n, 3, 1)
        if self.normalized:  # change @ (x - mean) / std on the R, G, B terms, back in raw coordinates
            ones = torch.ones_like(std.reshape(n, 3)[:, :1]).expand(n, self.n_terms - 3)
            inverse_std = torch.cat([1.0 / std.reshape(n, 3), ones], 1)  # (N, T)
            centre = torch.cat([mean.reshape(n, 3), ones * 0.0], 1)
            change = change * inverse_std.reshape(n, 1, -1)  # (N, 3, T)
            shift = shift - torch.sum(change * centre.reshape(n, 1, -1), dim=2, keepdim=True)
        mix = change + self.identity
        return films, torch.cat([mix, shift], dim=2).transpose(1, 2)  # (N, T + 1, 3)

    def grade(self, pixels: torch.Tensor, matrix: torch.Tensor | None) -> torch.Tensor:
        """The colour transform of channels-last pixels (N, H, W, 3)."""
        return pixels if matrix is None else self.transform(pixels, matrix)


class ContextEncoder(nn.Sequential):
    """The convolutions that turn the thumbnail's patches into context features (an nn.Sequential: same
    state-dict keys). `float_only`: int8 exporters keep it in float. It runs once per image on the 256²
    thumbnail, and the grade follows its features: quantized by PT2E, TFLite int8 of the shipped student fell
    to 34.0 dB from the torch student on a validation photo (all >= 57.9 in float, at the same latency).
    """

    float_only = True


def size_feature(height: float, width: float) -> float:
    """log2 of an image's geometric-mean side over CONTEXT_SIZE: 0 at 256², about 2 at 1280x853."""
    return math.log2(math.sqrt(height * width) / CONTEXT_SIZE)


class SizeFeature(nn.Module):
    """size_feature of the image from its stem's output (N, C, H/p, W/p) -> (N, 1, 1, 1), with graph ops
    (ones, sum, log) rather than Python on the shape, so an artifact with a dynamic height and width
    computes it for the size it is given. `float_only`: int8 exporters keep it in float."""

    float_only = True

    def __init__(self, patch: int):
        super().__init__()
        self.offset = math.log(patch * patch) - 2 * math.log(CONTEXT_SIZE)

    def forward(self, stem: torch.Tensor) -> torch.Tensor:
        count = torch.ones_like(stem[:, :1]).sum(dim=(2, 3), keepdim=True)  # (N, 1, 1, 1): H*W / p²
        return (torch.log(count) + self.offset) * (0.5 / math.log(2.0))


class ThumbNorm(nn.Module):
    """(a, at) -> (a, at) standardized per channel by the mean and std of `at` over its pixels, (N, C, 1, 1);
    at=None: a standardized by its own (InstanceNorm), returned alone. PatchResNet's thumb_norm. `float_only`:
    int8 exporters keep it in float (quantized, the variance of a channel with a small spread rounds to nothing
    and its inverse std blows up: TFLite int8 of the stop-38 student fell to 25 dB from the torch student with
    these ops in int8)."""

    float_only = True

    def forward(
        self, a: torch.Tensor, at: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        stats = a if at is None else at
        mean = stats.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        var = (stats * stats).mean(dim=(2, 3), keepdim=True) - mean * mean
        inverse = torch.rsqrt(torch.clamp(var, min=0.0) + 1e-5)
        if at is None:
            return (a - mean) * inverse
        return (a - mean) * inverse, (at - mean) * inverse


def _combine(x: torch.Tensor, context: GlobalContext, matrix: torch.Tensor | None, local: torch.Tensor):
    """clip(colour_transform(x) + local, -1, 1), computed channels-last: local (N, H, W, 3) -> (N, 3, H, W).

    Channels-last keeps the converters' full-resolution tail free of transposes, and lets int8 exporters
    leave the colour transform in float (see ColourTransform).
    """
    graded = context.grade(x.permute(0, 2, 3, 1), matrix)  # (N, H, W, 3)
    return torch.clamp(graded + local, -1.0, 1.0).permute(0, 3, 1, 2)


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
      context: thumbnail moments (6) + pooled down2 features of the thumbnail (4w) -> MLP
               -> FiLM per block + colour transform          (thumb None: of x itself)
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

    def forward(self, x: torch.Tensor, thumb: torch.Tensor | None = None) -> torch.Tensor:
        s0 = self.stem(x)  # (N, w, H, W)
        s1 = self.down1(s0)  # (N, 2w, H/2, W/2)
        h = self.down2(s1)  # (N, 4w, H/4, W/4)
        if thumb is None:
            films, matrix = self.context(x, h)
        else:  # the encoder again on the thumbnail: (N, 3, 256, 256) -> (N, 4w, 64, 64)
            films, matrix = self.context(thumb, self.down2(self.down1(self.stem(thumb))))
        for block, (scale, bias) in zip(self.blocks, films, strict=True):
            h = block(h, scale, bias)
        h = self.up1(_upsample(h)) + s1  # (N, 2w, H/2, W/2)
        h = self.up2(_upsample(h)) + s0  # (N, w, H, W)
        return _combine(x, self.context, matrix, torch.tanh(self.head(h)).permute(0, 2, 3, 1))


@register_model("tiny-unet", kind="student")
class TinyUNet(nn.Module):
    """A small U-Net of plain 3x3 convs (concat skips), global context at the bottom, identity input skip.

    Shapes for a 256x256 input and width w:
      enc0  conv 3->w, conv w->w          (N, w, 256, 256)
      enc1  conv stride 2 w->2w           (N, 2w, 128, 128)
      enc2  conv stride 2 2w->4w, conv    (N, 4w, 64, 64)
      context: thumbnail moments + pooled enc2 of the thumbnail -> FiLM on the bottleneck + colour
               transform                                      (thumb None: of x itself)
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

    def forward(self, x: torch.Tensor, thumb: torch.Tensor | None = None) -> torch.Tensor:
        e0 = self.enc0(x)  # (N, w, H, W)
        e1 = self.enc1(e0)  # (N, 2w, H/2, W/2)
        e2 = self.enc2(e1)  # (N, 4w, H/4, W/4)
        if thumb is None:
            films, matrix = self.context(x, e2)
        else:  # the encoder again on the thumbnail: (N, 3, 256, 256) -> (N, 4w, 64, 64)
            films, matrix = self.context(thumb, self.enc2(self.enc1(self.enc0(thumb))))
        scale, bias = films[0]
        h = e2 + self.bottleneck(e2) * scale + bias
        h = self.dec1(torch.cat([_upsample(h), e1], dim=1))  # (N, 2w, H/2, W/2)
        h = self.dec0(torch.cat([_upsample(h), e0], dim=1))  # (N, w, H, W)
        return _combine(x, self.context, matrix, torch.tanh(self.head(h)).permute(0, 2, 3, 1))


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
      context  stem + 2 x [3x3 conv stride 2, ReLU] w->c on the 256x256 thumbnail (thumb None: on x's
               patches)                                       (N, c, 16, 16)
               thumbnail moments (6, + 3 stds when normalized_colour) + mean (and mean square) of the
               context features (none with context_features=False: colour statistics only) -> MLP
               -> FiLM scale/bias per block + colour transform of the input  (N, 3, 256, 256)
               size_input: also log2 of the image's geometric-mean side / 256 (SizeFeature, from the stem's
               output shape; `size` overrides it for a crop of a larger photo)   (N, 1, 1, 1)
      blocks   n_blocks x [3x3 conv, FiLM, ReLU, 3x3 conv] + identity   (N, w, 64, 64)
               thumb_norm: the blocks also run on the thumbnail's patches (N, w, 64, 64), and each first
               conv's output is standardized per channel by its mean and std there before the FiLM (the
               teacher's InstanceNorm, with statistics of the whole image: the same for a crop, a tile or
               12 MP; on a crop without a thumbnail, InstanceNorm over the crop)
      head     1x1 conv w->3*p*p, pixel shuffle, tanh           (N, 3, 256, 256)  starts at zero
      out      clip(colour_transform(x) + head, -1, 1)
    H and W must be divisible by patch. No BatchNorm: nothing to fold; thumb_norm has no parameters.
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
        normalized_colour: bool = False,
        context_features: bool = True,
        size_input: bool = False,
        thumb_norm: bool = False,
    ):
        super().__init__()
        w, p, c = int(width), int(patch), int(context_width)
        self.size_input = bool(size_input)
        self.thumb_norm_op = ThumbNorm() if thumb_norm else None
        self.size_feature = SizeFeature(p) if self.size_input else None
        self.context_features = bool(context_features)
        self.patch = p
        self.stem = nn.Conv2d(3, w, p, stride=p)
        self.blocks = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(w, w, 3, padding=1), nn.Conv2d(w, w, 3, padding=1)])
            for _ in range(int(n_blocks))
        )
        encoder: list[nn.Module] = []
        for i in range(int(context_depth) if context_features else 0):
            encoder += [nn.Conv2d(w if i == 0 else c, c, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        self.context_encoder = ContextEncoder(*encoder)
        self.context = GlobalContext(
            (c if encoder else w) if context_features else 0,
            [w] * int(n_blocks),
            int(context_hidden),
            colour=colour,
            second_moments=second_moments,
            normalized=normalized_colour,
            extra_inputs=1 if self.size_input else 0,
        )
        self.head = nn.Conv2d(w, 3 * p * p, 1)
        nn.init.zeros_(self.head.weight)  # start as "do nothing"
        nn.init.zeros_(self.head.bias)

    def forward(
        self, x: torch.Tensor, thumb: torch.Tensor | None = None, size: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = F.relu(self.stem(x))  # (N, w, H/p, W/p)
        if thumb is None:
            thumb, patches = x, h
        else:
            patches = F.relu(self.stem(thumb))  # (N, w, 64, 64) for the 256x256 thumbnail
        features = self.context_encoder(patches) if self.context_features else None  # (N, c, 16, 16)
        extra = None
        if self.size_input:  # (N, 1, 1, 1): the whole image's working size (x's own unless `size` says)
            extra = self.size_feature(h) if size is None else size.reshape(-1, 1, 1, 1).to(x.dtype)
        films, matrix = self.context(
            thumb, features, extra
        )  # matrix: (N, T + 1, 3), from the thumbnail alone
        # thumb_norm: the blocks also run on the thumbnail, which sets their norm
        if self.thumb_norm_op is not None:
            h = self._thumb_normed_body(h, None if patches is h else patches, films)
        else:
            for (conv1, conv2), (scale, bias) in zip(self.blocks, films, strict=True):
                h = h + conv2(F.relu(conv1(h) * scale + bias))  # scale, bias: (N, w, 1, 1)
        # Channels (c, dy, dx) of each patch -> its p x p pixels: one pixel_shuffle (ONNX DepthToSpace,
        # MIL pixel_shuffle), then channels-last. The same values and gradients, bit for bit, as the
        # reshape -> 6-D permute it replaced, which onnxruntime ran as a slow full-resolution transpose.
        local = F.pixel_shuffle(torch.tanh(self.head(h)), self.patch)  # (N, 3, H, W)
        return _combine(x, self.context, matrix, local.permute(0, 2, 3, 1))

    def _thumb_normed_body(self, h: torch.Tensor, t: torch.Tensor | None, films) -> torch.Tensor:
        """The blocks with each first conv's output standardized per channel by the mean and std of the same
        conv's output on the thumbnail's patches `t` (None: on h itself, i.e. InstanceNorm), as the teacher's
        InstanceNorm standardizes by statistics of the whole image: the same for a crop, a tile or 12 MP."""
        last = len(self.blocks) - 1
        for index, ((conv1, conv2), (scale, bias)) in enumerate(zip(self.blocks, films, strict=True)):
            a = conv1(h)  # (N, w, H/p, W/p)
            if t is None:
                a = self.thumb_norm_op(a)
            else:
                a, at = self.thumb_norm_op(a, conv1(t))  # conv1(t): (N, w, 64, 64) on the thumbnail
                if index < last:  # the last block's thumbnail output is not read
                    t = t + conv2(F.relu(at * scale + bias))
            h = h + conv2(F.relu(a * scale + bias))
        return h
