"""Convolution, normalization, pooling and resampling ops of ML Programs, in numpy (2-D spatial only).

Convolutions run as matrix products (im2col, or one product per kernel tap when the unfolded input would be
large); depthwise convolutions as per-tap multiply-adds.

Example: python -c "import numpy as np; from runtime.coreml_reference.registry import OPS;
import pocketgan.runtime.coreml_reference; print(OPS['conv']({'x': np.ones((1, 2, 4, 4), np.float32),
'weight': np.ones((3, 2, 3, 3), np.float32), 'pad_type': 'same'}).shape)"
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pocketgan.runtime.coreml_reference.registry import get, ints, op

# Above this many unfolded input elements, a conv accumulates one matrix product per kernel tap instead.
IM2COL_MAX_ELEMENTS = 16 * 1024 * 1024


def _check_2d(x: np.ndarray, op_name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{op_name}: only 2-D spatial inputs (N, C, H, W) are supported, got rank {x.ndim}")


def _same_padding(size: int, kernel: int, stride: int, dilation: int, lower: bool) -> tuple[int, int]:
    extent = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + extent - size, 0)
    before = (total + 1) // 2 if lower else total // 2
    return before, total - before


def conv_padding(
    a: dict[str, Any], spatial: tuple[int, int], kernel: tuple[int, int]
) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim from the op's pad_type / pad / strides / dilations."""
    pad_type = get(a, "pad_type", "valid")
    strides, dilations = ints(a, "strides", [1, 1]), ints(a, "dilations", [1, 1])
    if pad_type == "valid":
        return [(0, 0), (0, 0)]
    if pad_type == "custom":
        pad = ints(a, "pad", [0, 0, 0, 0])
        return [(pad[0], pad[1]), (pad[2], pad[3])]
    if pad_type in ("same", "same_lower"):
        lower = pad_type == "same_lower"
        return [_same_padding(spatial[i], kernel[i], strides[i], dilations[i], lower) for i in range(2)]
    raise ValueError(f"pad_type {pad_type!r} is not supported (known: valid, custom, same, same_lower)")


def _tap(xp: np.ndarray, ky: int, kx: int, out_hw: tuple[int, int], strides: list[int], dil: list[int]):
    """The input window that kernel tap (ky, kx) sees for every output pixel: (N, C, Ho, Wo) view."""
    y0, x0 = ky * dil[0], kx * dil[1]
    return xp[
        :,
        :,
        y0 : y0 + (out_hw[0] - 1) * strides[0] + 1 : strides[0],
        x0 : x0 + (out_hw[1] - 1) * strides[1] + 1 : strides[1],
    ]


def _conv_dense(xp: np.ndarray, w: np.ndarray, out_hw: tuple[int, int], strides: list[int], dil: list[int]):
    n, c = xp.shape[:2]
    c_out, _, kh, kw = w.shape
    pixels = out_hw[0] * out_hw[1]
    if kh == kw == 1:
        cols = _tap(xp, 0, 0, out_hw, strides, dil).reshape(n, c, pixels)
        return np.matmul(w.reshape(c_out, c), cols)
    if c * kh * kw * pixels * n <= IM2COL_MAX_ELEMENTS:
        cols = np.empty((n, c, kh, kw, *out_hw), dtype=np.float32)
        for ky in range(kh):
            for kx in range(kw):
                cols[:, :, ky, kx] = _tap(xp, ky, kx, out_hw, strides, dil)
        return np.matmul(w.reshape(c_out, c * kh * kw), cols.reshape(n, c * kh * kw, pixels))
    out = np.zeros((n, c_out, pixels), dtype=np.float32)
    for ky in range(kh):
        for kx in range(kw):
            window = np.ascontiguousarray(_tap(xp, ky, kx, out_hw, strides, dil)).reshape(n, c, pixels)
            out += np.matmul(w[:, :, ky, kx], window)
    return out


def _conv_depthwise(
    xp: np.ndarray, w: np.ndarray, out_hw: tuple[int, int], strides: list[int], dil: list[int]
):
    c_out, _, kh, kw = w.shape
    if c_out != xp.shape[1]:  # channel multiplier > 1: output channel o reads input channel o // multiplier
        xp = np.repeat(xp, c_out // xp.shape[1], axis=1)
    out = np.zeros((xp.shape[0], c_out, *out_hw), dtype=np.float32)
    for ky in range(kh):
        for kx in range(kw):
            out += w[None, :, 0, ky, kx, None, None] * _tap(xp, ky, kx, out_hw, strides, dil)
    return out.reshape(xp.shape[0], c_out, -1)


@op("conv")
def _conv(a: dict[str, Any]) -> np.ndarray:
    x, w = a["x"], a["weight"].astype(np.float32)
    _check_2d(x, "conv")
    groups = int(get(a, "groups", 1))
    strides, dil = ints(a, "strides", [1, 1]), ints(a, "dilations", [1, 1])
    kernel = w.shape[2:]
    pads = conv_padding(a, x.shape[2:], kernel)
    xp = np.pad(x, [(0, 0), (0, 0), *pads]) if any(p for pair in pads for p in pair) else x
    out_hw = tuple((xp.shape[2 + i] - ((kernel[i] - 1) * dil[i] + 1)) // strides[i] + 1 for i in range(2))
    c_in, c_out = x.shape[1], w.shape[0]
    if groups == 1:
        out = _conv_dense(xp, w, out_hw, strides, dil)
    elif groups == c_in and w.shape[1] == 1:
        out = _conv_depthwise(xp, w, out_hw, strides, dil)
    else:
        cg, og = c_in // groups, c_out // groups
        out = np.concatenate(
            [
                _conv_dense(xp[:, g * cg : (g + 1) * cg], w[g * og : (g + 1) * og], out_hw, strides, dil)
                for g in range(groups)
            ],
            axis=1,
        )
    out = out.reshape(x.shape[0], c_out, *out_hw)
    if "bias" in a:
        out += a["bias"].astype(np.float32)[None, :, None, None]
    return out


def _conv_transpose_dense(x: np.ndarray, w: np.ndarray, strides: list[int], dil: list[int]) -> np.ndarray:
    """Full ('valid') transposed convolution: scatter-add W^T x into the strided output grid."""
    n, c_in, h, wd = x.shape
    _, c_out, kh, kw = w.shape
    cols = np.matmul(w.reshape(c_in, c_out * kh * kw).T, x.reshape(n, c_in, h * wd)).reshape(
        n, c_out, kh, kw, h, wd
    )
    out_h, out_w = (h - 1) * strides[0] + (kh - 1) * dil[0] + 1, (wd - 1) * strides[1] + (kw - 1) * dil[1] + 1
    out = np.zeros((n, c_out, out_h, out_w), dtype=np.float32)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dil[0], kx * dil[1]
            out[
                :,
                :,
                y0 : y0 + (h - 1) * strides[0] + 1 : strides[0],
                x0 : x0 + (wd - 1) * strides[1] + 1 : strides[1],
            ] += cols[:, :, ky, kx]
    return out


@op("conv_transpose")
def _conv_transpose(a: dict[str, Any]) -> np.ndarray:
    x, w = a["x"], a["weight"].astype(np.float32)
    _check_2d(x, "conv_transpose")
    groups = int(get(a, "groups", 1))
    strides, dil = ints(a, "strides", [1, 1]), ints(a, "dilations", [1, 1])
    cg = x.shape[1] // groups
    out = np.concatenate(
        [
            _conv_transpose_dense(x[:, g * cg : (g + 1) * cg], w[g * cg : (g + 1) * cg], strides, dil)
            for g in range(groups)
        ],
        axis=1,
    )
    pad_type = get(a, "pad_type", "valid")
    if pad_type == "custom":
        top, bottom, left, right = ints(a, "pad", [0, 0, 0, 0])
        out = out[:, :, top : out.shape[2] - bottom, left : out.shape[3] - right]
    elif pad_type == "same":  # output = input * stride; the surplus is cropped, the smaller half first
        crops = [out.shape[2 + i] - x.shape[2 + i] * strides[i] for i in range(2)]
        out = out[
            :,
            :,
            crops[0] // 2 : out.shape[2] - (crops[0] - crops[0] // 2),
            crops[1] // 2 : out.shape[3] - (crops[1] - crops[1] // 2),
        ]
    elif pad_type != "valid":
        raise ValueError(
            f"conv_transpose pad_type {pad_type!r} is not supported (known: valid, custom, same)"
        )
    output_shape = ints(a, "output_shape")
    if output_shape is not None:  # a requested size beyond the computed one is zero-filled at the end
        target_h, target_w = output_shape[-2:]
        grown = np.zeros(
            (*out.shape[:2], max(target_h, out.shape[2]), max(target_w, out.shape[3])), np.float32
        )
        grown[:, :, : out.shape[2], : out.shape[3]] = out
        out = grown[:, :, :target_h, :target_w]
    if "bias" in a:
        out = out + a["bias"].astype(np.float32)[None, :, None, None]
    return out


def _channel_vector(v: Any, rank: int) -> Any:
    return np.asarray(v, dtype=np.float32).reshape([-1] + [1] * (rank - 2)) if v is not None else None


@op("instance_norm")
def _instance_norm(a: dict[str, Any]) -> np.ndarray:
    x = a["x"]
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = np.mean(np.square(centered), axis=axes, keepdims=True)
    out = centered / np.sqrt(var + np.float32(get(a, "epsilon", 1e-5)))
    if "gamma" in a:
        out = out * _channel_vector(a["gamma"], x.ndim)
    if "beta" in a:
        out = out + _channel_vector(a["beta"], x.ndim)
    return out


@op("batch_norm")
def _batch_norm(a: dict[str, Any]) -> np.ndarray:
    x = a["x"]
    mean, var = _channel_vector(a["mean"], x.ndim), _channel_vector(a["variance"], x.ndim)
    out = (x - mean) / np.sqrt(var + np.float32(get(a, "epsilon", 1e-5)))
    if "gamma" in a:
        out = out * _channel_vector(a["gamma"], x.ndim)
    if "beta" in a:
        out = out + _channel_vector(a["beta"], x.ndim)
    return out


@op("layer_norm")
def _layer_norm(a: dict[str, Any]) -> np.ndarray:
    x = a["x"]
    axes = tuple(ints(a, "axes", list(range(x.ndim))))
    centered = x - x.mean(axis=axes, keepdims=True)
    out = centered / np.sqrt(
        np.mean(np.square(centered), axis=axes, keepdims=True) + np.float32(get(a, "epsilon", 1e-5))
    )
    if "gamma" in a:
        out = out * a["gamma"]
    if "beta" in a:
        out = out + a["beta"]
    return out


# ---- resampling --------------------------------------------------------------------------------------------


def _nearest(x: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    rows = np.minimum(
        np.floor(np.arange(out_hw[0]) * x.shape[-2] / out_hw[0]).astype(np.intp), x.shape[-2] - 1
    )
    cols = np.minimum(
        np.floor(np.arange(out_hw[1]) * x.shape[-1] / out_hw[1]).astype(np.intp), x.shape[-1] - 1
    )
    return x[..., rows, :][..., cols]


def _source_coords(n_in: int, n_out: int, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour indices and weights of each output sample along one axis (modes per the MIL docs)."""
    i = np.arange(n_out, dtype=np.float64)
    if mode == "align_corners":
        src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros_like(i)
    elif mode == "half_pixel":
        src = (i + 0.5) * (n_in / n_out) - 0.5
    else:  # asymmetric
        src = i * (n_in / n_out)
    src = np.clip(src, 0, n_in - 1)
    low = np.floor(src).astype(np.intp)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, (src - low).astype(np.float32)


def _bilinear(x: np.ndarray, out_hw: tuple[int, int], mode: str) -> np.ndarray:
    low, high, frac = _source_coords(x.shape[-2], out_hw[0], mode)
    x = x[..., low, :] * (1 - frac)[:, None] + x[..., high, :] * frac[:, None]
    low, high, frac = _source_coords(x.shape[-1], out_hw[1], mode)
    return x[..., low] * (1 - frac) + x[..., high] * frac


def _scaled_size(x: np.ndarray, a: dict[str, Any]) -> tuple[int, int]:
    sh, sw = float(get(a, "scale_factor_height", 1)), float(get(a, "scale_factor_width", 1))
    return math.floor(x.shape[-2] * sh), math.floor(x.shape[-1] * sw)


@op("upsample_nearest_neighbor")
def _upsample_nearest(a: dict[str, Any]) -> np.ndarray:
    return _nearest(a["x"], _scaled_size(a["x"], a))


@op("upsample_bilinear")
def _upsample_bilinear(a: dict[str, Any]) -> np.ndarray:
    align_corners = bool(get(a, "align_corners", True))
    half_pixel = bool(get(a, "half_pixel_centers", not align_corners))
    mode = "align_corners" if align_corners else "half_pixel" if half_pixel else "asymmetric"
    return _bilinear(a["x"], _scaled_size(a["x"], a), mode)


@op("resize_nearest_neighbor")
def _resize_nearest(a: dict[str, Any]) -> np.ndarray:
    return _nearest(a["x"], (int(get(a, "target_size_height")), int(get(a, "target_size_width"))))


SAMPLING_MODES = {
    "DEFAULT": "asymmetric",
    "ALIGN_CORNERS": "align_corners",
    "STRICT_ALIGN_CORNERS": "align_corners",
    "UNALIGN_CORNERS": "half_pixel",
}


@op("resize_bilinear")
def _resize_bilinear(a: dict[str, Any]) -> np.ndarray:
    sampling = get(a, "sampling_mode", "DEFAULT")
    if sampling not in SAMPLING_MODES:
        raise ValueError(
            f"resize_bilinear sampling_mode {sampling!r} is not supported (known: {', '.join(SAMPLING_MODES)})"
        )
    out_hw = (int(get(a, "target_size_height")), int(get(a, "target_size_width")))
    return _bilinear(a["x"], out_hw, SAMPLING_MODES[sampling])


# ---- pooling -----------------------------------------------------------------------------------------------


def _pool_windows(a: dict[str, Any], fill: float) -> tuple[np.ndarray, np.ndarray]:
    x = a["x"]
    _check_2d(x, "pool")
    if get(a, "ceil_mode", False):
        raise ValueError("pool with ceil_mode=True is not supported")
    kernel, strides = ints(a, "kernel_sizes"), ints(a, "strides", [1, 1])
    pads = conv_padding({**a, "dilations": np.array([1, 1])}, x.shape[2:], tuple(kernel))
    padded = np.pad(x, [(0, 0), (0, 0), *pads], constant_values=fill)
    inside = np.pad(np.ones(x.shape[2:], np.float32), pads)
    view = np.lib.stride_tricks.sliding_window_view(padded, kernel, axis=(2, 3))[
        :, :, :: strides[0], :: strides[1]
    ]
    counts = np.lib.stride_tricks.sliding_window_view(inside, kernel)[:: strides[0], :: strides[1]].sum(
        axis=(-2, -1)
    )
    return view, counts


@op("avg_pool")
def _avg_pool(a: dict[str, Any]) -> np.ndarray:
    view, counts = _pool_windows(a, 0.0)
    total = view.sum(axis=(-2, -1))
    if get(a, "exclude_padding_from_average", False):
        return total / counts
    return total / (view.shape[-2] * view.shape[-1])


@op("max_pool")
def _max_pool(a: dict[str, Any]) -> np.ndarray:
    view, _ = _pool_windows(a, -np.inf)
    return view.max(axis=(-2, -1))
