"""Model preparation before any format: eval mode, BatchNorm folded, static shape, op check, rewrites.

Example: python -c "from pocketgan.models.resolve import resolve; from pocketgan.export import exportability;
                    print(exportability(resolve('vintage').module, 256))"
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn

from pocketgan.errors import UnsupportedOpError
from pocketgan.export.base import (
    CONTEXT_SIZE,
    MAX_SIDE,
    MIN_SIDE,
    SIDE_MULTIPLE,
    get_exporter,
    registered_exporters,
)
from pocketgan.models.registry import has_context

log = logging.getLogger(__name__)


def transpose_needs_groups_or_dilation(module: nn.Module) -> bool:
    return isinstance(module, nn.ConvTranspose2d) and (module.groups != 1 or module.dilation != (1, 1))


def find_unsupported(model: nn.Module, fmt: str) -> list[tuple[str, str, str]]:
    """[(layer name, op type, why)] for every layer of `model` that `fmt` cannot take (its exporter's
    `unsupported_ops`)."""
    found = []
    for layer, module in model.named_modules():
        for op in get_exporter(fmt).unsupported_ops:
            if op.matches(module):
                found.append((layer or "(root)", type(module).__name__, op.why))
    return found


# A context model's second input: the thumbnail its global context is computed from (pocketgan.images
# .context_thumbnail of the whole image), fixed at CONTEXT_SIZE x CONTEXT_SIZE whatever the image size.
CONTEXT_NAME = "context"


def sample_inputs(height: int, width: int, context: bool, layout: str = "NHWC") -> tuple[torch.Tensor, ...]:
    """Zero inputs to trace a model with: the image (1, H, W, 3) or (1, 3, H, W), and the context thumbnail
    in the same layout when `context`."""
    shape = (1, height, width, 3) if layout == "NHWC" else (1, 3, height, width)
    image = torch.zeros(shape)
    if not context:
        return (image,)
    side = CONTEXT_SIZE
    return image, torch.zeros((1, side, side, 3) if layout == "NHWC" else (1, 3, side, side))


def dynamic_image_shapes(layout: str = "NHWC") -> tuple[dict, None]:
    """torch.export `dynamic_shapes` for (image, context): H and W of the image any multiple of 4 in
    [MIN_SIDE, MAX_SIDE], the context fixed."""
    from torch.export import Dim

    height = Dim("height_in_patches", min=MIN_SIDE // SIDE_MULTIPLE, max=MAX_SIDE // SIDE_MULTIPLE)
    width = Dim("width_in_patches", min=MIN_SIDE // SIDE_MULTIPLE, max=MAX_SIDE // SIDE_MULTIPLE)
    axes = (1, 2) if layout == "NHWC" else (2, 3)
    return {axes[0]: SIDE_MULTIPLE * height, axes[1]: SIDE_MULTIPLE * width}, None


class ChannelsLast(nn.Module):
    """`model` with NHWC input and output: (N, H, W, 3) -> (N, H, W, 3), the layout cameras deliver.

    A student whose tail already runs channels-last ends in a permute that this one cancels, so the
    converted graph has no output transpose at all. A context model takes the thumbnail as a second NHWC
    input, (N, 256, 256, 3); traced with one input, it sees its own image as thumbnail.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.has_context = has_context(model)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        image = x.permute(0, 3, 1, 2)
        if context is not None:
            return self.model(image, context.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        if self.has_context and isinstance(self.model, torch.fx.GraphModule):
            # A BatchNorm-folded (fx-traced) student has no thumb=None path: its image is its thumbnail.
            return self.model(image, image).permute(0, 2, 3, 1)
        # thumb=None, not thumb=image: the same values, without running the encoder twice on the image
        # (XNNPACK refuses int8 convolutions whose weights two convolutions share).
        return self.model(image).permute(0, 2, 3, 1)


def nhwc_calibration(prepared) -> np.ndarray:
    """`prepared`'s calibration batches (N, 3, H, W) as contiguous (N, H, W, 3): what ChannelsLast takes.

    A fixed-size artifact (prepared.fixed) other than the export size gets calibration images at its size."""
    fixed = tuple(prepared.fixed) if prepared.fixed else None
    images = (
        prepared.calibration(fixed) if fixed and fixed != (prepared.size,) * 2 else prepared.calibration()
    )
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def calibration_inputs(prepared) -> list[tuple[np.ndarray, ...]]:
    """One (image,) or (image, context) tuple of NHWC float32 (1, H, W, 3) arrays per calibration image,
    the context its 256² thumbnail (at 256² the image itself)."""
    images = nhwc_calibration(prepared)
    if not prepared.context:
        return [(image[None],) for image in images]
    return [(image[None], _thumbnail_of(image)[None]) for image in images]


def _thumbnail_of(image: np.ndarray) -> np.ndarray:
    """float NHWC image -> its CONTEXT_SIZE² thumbnail (the image itself at that size; bilinear otherwise)."""
    if image.shape[:2] == (CONTEXT_SIZE, CONTEXT_SIZE):
        return image
    from torch.nn import functional as F

    batch = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None]))
    resized = F.interpolate(batch, size=(CONTEXT_SIZE, CONTEXT_SIZE), mode="bilinear", antialias=True)
    return np.ascontiguousarray(resized[0].numpy().transpose(1, 2, 0))


def float_only_types(model: nn.Module) -> list[str]:
    """ "module.QualName" of each module class in `model` marked `float_only = True`: int8 exporters keep
    those layers in float (e.g. the students' full-resolution colour transform, faster in float)."""
    types = {type(m) for m in model.modules() if getattr(m, "float_only", False)}
    return sorted(f"{t.__module__}.{t.__qualname__}" for t in types)


def check_ops(model: nn.Module, fmt: str) -> None:
    """Raise UnsupportedOpError naming the first op and layer that `fmt` cannot take."""
    found = find_unsupported(model, fmt)
    if found:
        layer, op, why = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise UnsupportedOpError(f"{fmt}: op {op} in layer {layer!r} is not exportable: {why}{more}")


def exportability(model: nn.Module, size: int = 256) -> dict[str, str]:
    """{format: "ok" | why not} for every registered exporter: an op check and availability, no conversion."""
    verdicts = {}
    for fmt, exporter in registered_exporters().items():
        found = find_unsupported(model, fmt)
        if found:
            layer, op, why = found[0]
            verdicts[fmt] = f"op {op} in layer {layer!r}: {why}"
            continue
        verdicts[fmt] = exporter.availability()
        note = exporter.exportability_note(model) if verdicts[fmt].is_ok else None
        if note:
            verdicts[fmt] = f"ok ({note})"
    return verdicts


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """Fold every BatchNorm that follows a convolution into it (eval mode); returns (model, folded count).

    Uses torch.fx to find conv -> bn pairs; a model fx cannot trace keeps its BatchNorms (an eval-mode
    BatchNorm is a per-channel affine map that every converter handles, only slower).
    """
    n_batchnorm = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if not n_batchnorm:
        return model, 0
    try:
        from torch.fx.experimental.optimization import fuse

        fused = fuse(model.eval(), inplace=False)
    except Exception as exc:  # fx cannot trace every model; BatchNorm stays unfused then
        log.warning("BatchNorm not folded (%s: %s)", type(exc).__name__, str(exc).splitlines()[0][:120])
        return model, 0
    left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    return fused.eval(), n_batchnorm - left


class CroppedConvTranspose2d(nn.Module):
    """ConvTranspose2d(padding=p, output_padding=op) as ConvTranspose2d(padding=0) + crop (exact).

    litert-torch cannot legalize the padded form (FACTS.md); the unpadded one converts.
    """

    def __init__(self, original: nn.ConvTranspose2d):
        super().__init__()
        self.conv = nn.ConvTranspose2d(
            original.in_channels,
            original.out_channels,
            original.kernel_size,
            stride=original.stride,
            padding=0,
            output_padding=0,
            groups=original.groups,
            bias=original.bias is not None,
            dilation=original.dilation,
        )
        self.conv.load_state_dict(original.state_dict())
        self.crop_start = tuple(original.padding)
        self.crop_end = tuple(p - o for p, o in zip(original.padding, original.output_padding, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # (N, C, (H-1)s + k, (W-1)s + k)
        (top, left), (bottom, right) = self.crop_start, self.crop_end
        if bottom < 0 or right < 0:
            y = nn.functional.pad(y, (0, max(0, -right), 0, max(0, -bottom)))
            bottom, right = max(bottom, 0), max(right, 0)
        return y[:, :, top : y.shape[2] - bottom, left : y.shape[3] - right]


def padded_transposes(model: nn.Module) -> list[str]:
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.ConvTranspose2d) and any(m.padding) and not transpose_needs_groups_or_dilation(m)
    ]


def rewrite_conv_transpose(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of `model` with every padded ConvTranspose2d replaced by CroppedConvTranspose2d."""
    names = padded_transposes(model)
    if not names:
        return model, 0
    model = copy.deepcopy(model)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, CroppedConvTranspose2d(getattr(parent, child)))
    return model, len(names)


def prepare_model(model: nn.Module, size: int) -> tuple[nn.Module, dict[str, int]]:
    """Eval mode, BatchNorm folded, static (1, 3, size, size) shape checked; returns (model, notes).

    A context model (has_context) is checked, and must be called from then on, with its thumbnail given:
    torch.fx, which folds BatchNorm, traces `thumb` as an input, so the folded model has no thumb=None path.
    """
    context = has_context(model)
    model = copy.deepcopy(model).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    model, folded = fold_batchnorm(model)
    with torch.no_grad():
        try:
            y = model(*sample_inputs(size, size, context, layout="NCHW"))
        except Exception as exc:
            raise UnsupportedOpError(
                f"the model does not run on a static (1, 3, {size}, {size}) input: {str(exc).splitlines()[0][:200]}"
            ) from None
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (1, 3, size, size):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise UnsupportedOpError(f"expected an output of shape (1, 3, {size}, {size}), got {shape}")
    return model, {"batchnorm_folded": folded}
