"""Elementwise, tensor-shaping and weight-decompression ops of ML Programs, in numpy.

Example: python -c "import numpy as np; from runtime.coreml_reference.registry import OPS;
import pocketgan.runtime.coreml_reference; print(OPS['pad']({'x': np.eye(2), 'pad': np.array([1, 1]), 'mode': 'reflect'}))"
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pocketgan.runtime.coreml_reference.program import unpack_bits
from pocketgan.runtime.coreml_reference.registry import get, ints, op

# ---- elementwise -------------------------------------------------------------------------------------------


@op("add")
def _add(a: dict[str, Any]) -> np.ndarray:
    return np.add(a["x"], a["y"])


@op("sub")
def _sub(a: dict[str, Any]) -> np.ndarray:
    return np.subtract(a["x"], a["y"])


@op("mul")
def _mul(a: dict[str, Any]) -> np.ndarray:
    return np.multiply(a["x"], a["y"])


@op("real_div")
def _real_div(a: dict[str, Any]) -> np.ndarray:
    return np.true_divide(a["x"], a["y"])


@op("maximum")
def _maximum(a: dict[str, Any]) -> np.ndarray:
    return np.maximum(a["x"], a["y"])


@op("minimum")
def _minimum(a: dict[str, Any]) -> np.ndarray:
    return np.minimum(a["x"], a["y"])


@op("pow")
def _pow(a: dict[str, Any]) -> np.ndarray:
    return np.power(a["x"], a["y"])


@op("relu")
def _relu(a: dict[str, Any]) -> np.ndarray:
    return np.maximum(a["x"], 0)


@op("relu6")
def _relu6(a: dict[str, Any]) -> np.ndarray:
    return np.clip(a["x"], 0, 6)


@op("leaky_relu")
def _leaky_relu(a: dict[str, Any]) -> np.ndarray:
    x = a["x"]
    return np.where(x >= 0, x, x * np.float32(get(a, "alpha", 0.01)))


@op("tanh")
def _tanh(a: dict[str, Any]) -> np.ndarray:
    return np.tanh(a["x"])


@op("sigmoid")
def _sigmoid(a: dict[str, Any]) -> np.ndarray:
    # exp of a large negative argument overflows to inf; 1/(1+inf) is the right limit (0).
    return 1.0 / (1.0 + np.exp(-a["x"]))


@op("sigmoid_hard")
def _sigmoid_hard(a: dict[str, Any]) -> np.ndarray:
    alpha, beta = np.float32(get(a, "alpha", 0.2)), np.float32(get(a, "beta", 0.5))
    return np.clip(alpha * a["x"] + beta, 0, 1)


@op("silu")
def _silu(a: dict[str, Any]) -> np.ndarray:
    return a["x"] / (1.0 + np.exp(-a["x"]))


@op("softplus")
def _softplus(a: dict[str, Any]) -> np.ndarray:
    return np.logaddexp(a["x"], 0)


@op("exp")
def _exp(a: dict[str, Any]) -> np.ndarray:
    return np.exp(a["x"])


@op("log")
def _log(a: dict[str, Any]) -> np.ndarray:
    """y = log(x + epsilon), epsilon 1e-45 unless given (MIL's default)."""
    x = a["x"]
    return np.log(x + np.asarray(get(a, "epsilon", 1e-45), dtype=x.dtype))


@op("sqrt")
def _sqrt(a: dict[str, Any]) -> np.ndarray:
    return np.sqrt(a["x"])


@op("rsqrt")
def _rsqrt(a: dict[str, Any]) -> np.ndarray:
    return 1.0 / np.sqrt(a["x"] + np.float32(get(a, "epsilon", 1e-12)))


@op("inverse")
def _inverse(a: dict[str, Any]) -> np.ndarray:
    return 1.0 / (a["x"] + np.float32(get(a, "epsilon", 1e-4)))


@op("abs")
def _abs(a: dict[str, Any]) -> np.ndarray:
    return np.abs(a["x"])


@op("square")
def _square(a: dict[str, Any]) -> np.ndarray:
    return np.square(a["x"])


@op("clip")
def _clip(a: dict[str, Any]) -> np.ndarray:
    return np.minimum(np.maximum(a["x"], np.float32(get(a, "alpha"))), np.float32(get(a, "beta")))


@op("identity")
def _identity(a: dict[str, Any]) -> np.ndarray:
    return a["x"]


DTYPE_NAMES = {"fp16": np.float16, "fp32": np.float32, "int32": np.int32, "int16": np.int16, "bool": np.bool_}


@op("cast")
def _cast(a: dict[str, Any]) -> np.ndarray:
    # Rounding to the declared output type (fp16 included) is applied by the interpreter after every op.
    dtype = get(a, "dtype")
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"cast to {dtype!r} is not supported (known: {', '.join(DTYPE_NAMES)})")
    return np.asarray(a["x"]).astype(DTYPE_NAMES[dtype])


# ---- reductions --------------------------------------------------------------------------------------------


def _reduce(fn: Any, a: dict[str, Any]) -> np.ndarray:
    axes = ints(a, "axes")
    return fn(a["x"], axis=None if axes is None else tuple(axes), keepdims=bool(get(a, "keep_dims", False)))


@op("reduce_mean")
def _reduce_mean(a: dict[str, Any]) -> np.ndarray:
    return _reduce(np.mean, a)


@op("reduce_sum")
def _reduce_sum(a: dict[str, Any]) -> np.ndarray:
    return _reduce(np.sum, a)


@op("reduce_max")
def _reduce_max(a: dict[str, Any]) -> np.ndarray:
    return _reduce(np.max, a)


@op("reduce_min")
def _reduce_min(a: dict[str, Any]) -> np.ndarray:
    return _reduce(np.min, a)


# ---- shaping -----------------------------------------------------------------------------------------------

PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "symmetric": "symmetric"}


@op("pad")
def _pad(a: dict[str, Any]) -> np.ndarray:
    x = a["x"]
    pad = ints(a, "pad")
    mode = get(a, "mode", "constant")
    if mode not in PAD_MODES:
        raise ValueError(f"pad mode {mode!r} is not supported (known: {', '.join(PAD_MODES)})")
    padded_dims = len(pad) // 2  # pad covers the last len(pad)/2 dims, (before, after) each
    widths = [(0, 0)] * (x.ndim - padded_dims) + [(pad[2 * i], pad[2 * i + 1]) for i in range(padded_dims)]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=get(a, "constant_val", 0.0))
    return np.pad(x, widths, mode=PAD_MODES[mode])


@op("crop")
def _crop(a: dict[str, Any]) -> np.ndarray:
    x = a["x"]
    top, bottom = ints(a, "crop_height", [0, 0])
    left, right = ints(a, "crop_width", [0, 0])
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]


@op("slice_by_index")
def _slice_by_index(a: dict[str, Any]) -> np.ndarray:
    x = a["x"]
    rank = x.ndim
    begin, end = ints(a, "begin"), ints(a, "end")
    stride = ints(a, "stride", [1] * rank)
    begin_mask = [bool(v) for v in np.asarray(a.get("begin_mask", [False] * rank)).reshape(-1)]
    end_mask = [bool(v) for v in np.asarray(a.get("end_mask", [False] * rank)).reshape(-1)]
    squeeze_mask = [bool(v) for v in np.asarray(a.get("squeeze_mask", [False] * rank)).reshape(-1)]
    index: list[Any] = []
    for axis in range(rank):
        if squeeze_mask[axis]:
            index.append(begin[axis])
            continue
        start = None if begin_mask[axis] else begin[axis]
        stop = None if end_mask[axis] else end[axis]
        index.append(slice(start, stop, stride[axis]))
    return x[tuple(index)]


@op("concat")
def _concat(a: dict[str, Any]) -> np.ndarray:
    values, axis = a["values"], int(get(a, "axis"))
    if get(a, "interleave", False):
        stacked = np.stack(values, axis=axis + 1 if axis >= 0 else axis)
        shape = list(values[0].shape)
        shape[axis] = -1
        return stacked.reshape(shape)
    # Shape arithmetic of flexible-shape programs concatenates scalars (gathered dims) into a shape.
    return np.concatenate([np.atleast_1d(v) for v in values], axis=axis)


@op("reshape")
def _reshape(a: dict[str, Any]) -> np.ndarray:
    x, shape = a["x"], ints(a, "shape")
    # iOS17 semantics: 0 copies the input dim at that position.
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


@op("shape")
def _shape(a: dict[str, Any]) -> np.ndarray:
    """The input's shape as int32: what a program with flexible input shapes computes reshapes from."""
    return np.asarray(a["x"].shape, np.int32)


@op("fill_like")
def _fill_like(a: dict[str, Any]) -> np.ndarray:
    """A tensor of ref_tensor's shape filled with `value` (in value's dtype): torch.ones_like/zeros_like."""
    value = np.asarray(get(a, "value", 0.0))
    dtype = np.float32 if value.dtype == np.float64 else value.dtype
    return np.full(a["ref_tensor"].shape, value, dtype)


@op("gather")
def _gather(a: dict[str, Any]) -> np.ndarray:
    axis, batch_dims = int(get(a, "axis", 0)), int(get(a, "batch_dims", 0))
    if batch_dims:
        raise NotImplementedError("gather with batch_dims > 0")
    x = a["x"]
    indices = np.asarray(a["indices"]).astype(np.int64)
    return np.take(x, np.where(indices < 0, indices + x.shape[axis], indices), axis=axis)


@op("transpose")
def _transpose(a: dict[str, Any]) -> np.ndarray:
    return np.transpose(a["x"], ints(a, "perm"))


@op("linear")
def _linear(a: dict[str, Any]) -> np.ndarray:
    """x (*, D_in) @ weight (D_out, D_in).T + bias (D_out)."""
    out = np.matmul(a["x"], np.swapaxes(a["weight"], -1, -2))
    bias = get(a, "bias")
    return out if bias is None else out + bias


@op("matmul")
def _matmul(a: dict[str, Any]) -> np.ndarray:
    """Batched matmul with numpy broadcasting; transpose_x / transpose_y swap the last two axes first."""
    x, y = a["x"], a["y"]
    if get(a, "transpose_x", False):
        x = np.swapaxes(x, -1, -2)
    if get(a, "transpose_y", False):
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


@op("pixel_shuffle")
def _pixel_shuffle(a: dict[str, Any]) -> np.ndarray:
    """(n, C*f*f, H, W) -> (n, C, H*f, W*f), as torch.nn.PixelShuffle: channel c*f*f + i*f + j -> (i, j)."""
    x, f = a["x"], int(get(a, "upscale_factor"))
    n, channels, height, width = x.shape
    blocks = x.reshape(n, channels // (f * f), f, f, height, width)
    return blocks.transpose(0, 1, 4, 2, 5, 3).reshape(n, channels // (f * f), height * f, width * f)


@op("tile")
def _tile(a: dict[str, Any]) -> np.ndarray:
    return np.tile(a["x"], ints(a, "reps"))


@op("squeeze")
def _squeeze(a: dict[str, Any]) -> np.ndarray:
    axes = ints(a, "axes")
    return np.squeeze(a["x"], axis=None if axes is None else tuple(axes))


@op("expand_dims")
def _expand_dims(a: dict[str, Any]) -> np.ndarray:
    return np.expand_dims(a["x"], axis=tuple(ints(a, "axes")))


# ---- weight decompression (constexpr_*), evaluated once when the program is prepared -----------------------


def _along_axis(vector: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A scalar or per-channel vector shaped to broadcast along `axis` of a rank-`rank` tensor."""
    vector = np.asarray(vector)
    if vector.ndim == 0:
        return vector
    shape = [1] * rank
    shape[axis] = vector.size
    return vector.reshape(shape)


@op("constexpr_affine_dequantize")
def _constexpr_affine_dequantize(a: dict[str, Any]) -> np.ndarray:
    data = a["quantized_data"]
    axis = int(get(a, "axis", 0))
    zero_point = _along_axis(a["zero_point"], data.ndim, axis).astype(np.float32)
    scale = _along_axis(a["scale"], data.ndim, axis).astype(np.float32)
    return scale * (data.astype(np.float32) - zero_point)


def _expand_blocks(param: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Repeat a block-wise parameter (same rank as the data) up to the data's shape."""
    for axis, (size, blocks) in enumerate(zip(shape, param.shape, strict=True)):
        if size % blocks:
            raise ValueError(f"block-wise parameter dim {blocks} does not divide data dim {size}")
        param = np.repeat(param, size // blocks, axis=axis)
    return param


@op("constexpr_blockwise_shift_scale")
def _constexpr_blockwise_shift_scale(a: dict[str, Any]) -> np.ndarray:
    data = a["data"].astype(np.float32)
    scale = _expand_blocks(a["scale"].astype(np.float32), data.shape)
    if "offset" in a:
        data = data - _expand_blocks(a["offset"].astype(np.float32), data.shape)
    return scale * data


@op("constexpr_lut_to_dense")
def _constexpr_lut_to_dense(a: dict[str, Any]) -> np.ndarray:
    lut, indices = a["lut"], a["indices"]
    if "shape" in a:  # iOS16: one flat LUT, indices packed into uint8 bytes
        shape = tuple(ints(a, "shape"))
        nbits = int(np.log2(lut.size))
        unpacked = unpack_bits(indices.reshape(-1), nbits, int(np.prod(shape)))
        return lut.reshape(-1)[unpacked].reshape(shape)
    # iOS18: lut (*blocks, palette, vector) indexed per block by unpacked indices of the output rank.
    vector_size = lut.shape[-1]
    block_of = [np.arange(n) // (n // lut.shape[d]) for d, n in enumerate(indices.shape)]
    grids = np.meshgrid(*block_of, indexing="ij", sparse=True)
    gathered = lut[(*grids, indices.astype(np.intp))]  # (*indices.shape, vector)
    if vector_size == 1:
        return gathered[..., 0]
    axis = int(get(a, "vector_axis")) % indices.ndim
    shape = [s * vector_size if d == axis else s for d, s in enumerate(indices.shape)]
    return np.moveaxis(gathered, -1, axis + 1).reshape(shape)


@op("constexpr_cast")
def _constexpr_cast(a: dict[str, Any]) -> np.ndarray:
    return a["source_val"].astype(np.float32)


@op("constexpr_sparse_to_dense")
def _constexpr_sparse_to_dense(a: dict[str, Any]) -> np.ndarray:
    data, mask = a["nonzero_data"], a["mask"]
    if "shape" in a:  # iOS16: bit mask packed into uint8 bytes
        shape = tuple(ints(a, "shape"))
        mask = np.unpackbits(mask.reshape(-1), bitorder="little")[: int(np.prod(shape))].reshape(shape)
    dense = np.zeros(mask.shape, dtype=data.dtype)
    dense[mask != 0] = data
    return dense
