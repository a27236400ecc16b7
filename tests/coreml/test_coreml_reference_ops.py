"""Guard test: every op coreml-reference implements runs against its numpy/torch expectation, and every op
output has the shape coremltools' own type inference recorded in the converted program."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pocketgan.runtime.coreml_reference import load_interpreter, run_program, supported_ops

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

pytestmark = pytest.mark.coreml

RNG = np.random.default_rng(7)
SHAPE = (1, 4, 8, 8)
X = RNG.normal(size=SHAPE).astype(np.float32)
P = RNG.uniform(0.2, 2.0, size=SHAPE).astype(np.float32)
W_DENSE = RNG.normal(size=(6, 4, 3, 3)).astype(np.float32)
W_DEPTHWISE = RNG.normal(size=(4, 1, 3, 3)).astype(np.float32)
W_GROUPED = RNG.normal(size=(6, 2, 3, 3)).astype(np.float32)
W_POINTWISE = RNG.normal(size=(5, 4, 1, 1)).astype(np.float32)
W_TRANSPOSED = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)
W_TRANSPOSED_GROUPED = RNG.normal(size=(4, 2, 2, 2)).astype(np.float32)
BIAS6, BIAS3, BIAS4 = (RNG.normal(size=n).astype(np.float32) for n in (6, 3, 4))
GAMMA, BETA, MEAN = (RNG.normal(size=4).astype(np.float32) for _ in range(3))
VARIANCE = RNG.uniform(0.5, 2, size=4).astype(np.float32)
Q_DATA = RNG.integers(-128, 127, size=(4, 1, 1)).astype(np.int8)
Q_ZERO, Q_SCALE = np.array([0, 3, -2, 1], np.int8), np.array([0.01, 0.02, 0.03, 0.04], np.float32)
LUT = np.array([-1.0, -0.25, 0.5, 2.0], np.float32)
LUT_INDICES = np.array([3, 0, 2, 1], np.uint8)
SPARSE_MASK = np.array([1, 0, 1, 1], np.uint8)
SPARSE_DATA = np.array([0.5, -1.5, 2.5], np.float32)
INT4_DATA = RNG.integers(-8, 8, size=(4, 8, 8)).astype(np.int8)
INT4_OFFSET = RNG.integers(-2, 3, size=(2, 1, 4)).astype(np.int8)
BLOCK_SCALE = RNG.uniform(0.05, 0.2, size=(2, 1, 4)).astype(np.float32)
UINT2_INDICES = RNG.integers(0, 4, size=(4, 8, 8)).astype(np.uint8)
BLOCK_LUT = RNG.normal(size=(2, 1, 1, 4, 1)).astype(np.float32)
VECTOR_INDICES = RNG.integers(0, 4, size=(2, 8, 8)).astype(np.uint8)
VECTOR_LUT = RNG.normal(size=(1, 1, 1, 4, 2)).astype(np.float32)
W_LINEAR = RNG.normal(size=(6, 8)).astype(np.float32)


def pack_lsb_first(values: np.ndarray, nbits: int) -> np.ndarray:
    bits = (values.reshape(-1, 1).astype(np.int64) >> np.arange(nbits)) & 1
    return np.packbits(bits.reshape(-1).astype(np.uint8), bitorder="little")


def t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def torch_conv(x, w, bias=None, stride=1, padding=(0, 0, 0, 0), dilation=1, groups=1):
    return F.conv2d(
        F.pad(t(x), padding), t(w), None if bias is None else t(bias), stride, 0, dilation, groups
    ).numpy()


def same_padding(size: int, kernel: int, stride: int, lower: bool = False) -> tuple[int, int]:
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    before = (total + 1) // 2 if lower else total // 2
    return before, total - before


def torch_interp(x, **kwargs):
    return F.interpolate(t(x), **kwargs).numpy()


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


# (case id, op type under test, MIL builder (x, p) -> var, expectation (x, p) -> array)
CASES_IOS16 = [
    ("add", "add", lambda x, p: mb.add(x=x, y=p), lambda x, p: x + p),
    ("sub", "sub", lambda x, p: mb.sub(x=x, y=p), lambda x, p: x - p),
    ("mul", "mul", lambda x, p: mb.mul(x=x, y=p), lambda x, p: x * p),
    ("real_div", "real_div", lambda x, p: mb.real_div(x=x, y=p), lambda x, p: x / p),
    ("maximum", "maximum", lambda x, p: mb.maximum(x=x, y=p), np.maximum),
    ("minimum", "minimum", lambda x, p: mb.minimum(x=x, y=p), np.minimum),
    ("pow", "pow", lambda x, p: mb.pow(x=p, y=np.float32(1.5)), lambda x, p: p**1.5),
    ("relu", "relu", lambda x, p: mb.relu(x=x), lambda x, p: np.maximum(x, 0)),
    ("relu6", "relu6", lambda x, p: mb.relu6(x=mb.mul(x=x, y=4.0)), lambda x, p: np.clip(4 * x, 0, 6)),
    (
        "leaky_relu",
        "leaky_relu",
        lambda x, p: mb.leaky_relu(x=x, alpha=0.2),
        lambda x, p: np.where(x > 0, x, 0.2 * x),
    ),
    ("tanh", "tanh", lambda x, p: mb.tanh(x=x), lambda x, p: np.tanh(x)),
    ("sigmoid", "sigmoid", lambda x, p: mb.sigmoid(x=x), lambda x, p: sigmoid(x)),
    (
        "sigmoid_hard",
        "sigmoid_hard",
        lambda x, p: mb.sigmoid_hard(x=x, alpha=0.2, beta=0.5),
        lambda x, p: np.clip(0.2 * x + 0.5, 0, 1),
    ),
    ("silu", "silu", lambda x, p: mb.silu(x=x), lambda x, p: x * sigmoid(x)),
    ("softplus", "softplus", lambda x, p: mb.softplus(x=x), lambda x, p: np.log1p(np.exp(x))),
    ("exp", "exp", lambda x, p: mb.exp(x=x), lambda x, p: np.exp(x)),
    ("sqrt", "sqrt", lambda x, p: mb.sqrt(x=p), lambda x, p: np.sqrt(p)),
    ("log", "log", lambda x, p: mb.log(x=p), lambda x, p: np.log(p)),
    ("log_epsilon", "log", lambda x, p: mb.log(x=p, epsilon=0.5), lambda x, p: np.log(p + 0.5)),
    ("rsqrt", "rsqrt", lambda x, p: mb.rsqrt(x=p, epsilon=1e-3), lambda x, p: 1 / np.sqrt(p + 1e-3)),
    ("inverse", "inverse", lambda x, p: mb.inverse(x=p, epsilon=1e-3), lambda x, p: 1 / (p + 1e-3)),
    ("abs", "abs", lambda x, p: mb.abs(x=x), lambda x, p: np.abs(x)),
    ("square", "square", lambda x, p: mb.square(x=x), lambda x, p: x * x),
    ("clip", "clip", lambda x, p: mb.clip(x=x, alpha=-0.3, beta=0.4), lambda x, p: np.clip(x, -0.3, 0.4)),
    ("identity", "identity", lambda x, p: mb.identity(x=x), lambda x, p: x),
    ("cast_fp16", "cast", lambda x, p: mb.cast(x=x, dtype="fp16"), lambda x, p: x.astype(np.float16)),
    (
        "reduce_mean",
        "reduce_mean",
        lambda x, p: mb.reduce_mean(x=x, axes=[2, 3], keep_dims=True),
        lambda x, p: x.mean((2, 3), keepdims=True),
    ),
    ("reduce_sum", "reduce_sum", lambda x, p: mb.reduce_sum(x=x, axes=[1]), lambda x, p: x.sum(1)),
    (
        "reduce_max",
        "reduce_max",
        lambda x, p: mb.reduce_max(x=x, axes=[-1], keep_dims=True),
        lambda x, p: x.max(-1, keepdims=True),
    ),
    ("reduce_min", "reduce_min", lambda x, p: mb.reduce_min(x=x), lambda x, p: x.min()),
    (
        "pad_reflect",
        "pad",
        lambda x, p: mb.pad(x=x, pad=[1, 2, 2, 1], mode="reflect"),
        lambda x, p: F.pad(t(x), (2, 1, 1, 2), mode="reflect").numpy(),
    ),
    (
        "pad_replicate",
        "pad",
        lambda x, p: mb.pad(x=x, pad=[2, 0, 1, 3], mode="replicate"),
        lambda x, p: F.pad(t(x), (1, 3, 2, 0), mode="replicate").numpy(),
    ),
    (
        "pad_constant",
        "pad",
        lambda x, p: mb.pad(x=x, pad=[1, 1, 0, 2], mode="constant", constant_val=0.5),
        lambda x, p: F.pad(t(x), (0, 2, 1, 1), value=0.5).numpy(),
    ),
    (
        "crop",
        "crop",
        lambda x, p: mb.crop(x=x, crop_height=[1, 2], crop_width=[0, 3]),
        lambda x, p: x[:, :, 1:6, 0:5],
    ),
    (
        "slice_by_index",
        "slice_by_index",
        lambda x, p: mb.slice_by_index(
            x=x,
            begin=[0, 1, 1, 0],
            end=[1, 3, 8, 6],
            stride=[1, 1, 2, 2],
            end_mask=[False, False, True, False],
            squeeze_mask=[True, False, False, False],
        ),
        lambda x, p: x[0, 1:3, 1::2, 0:6:2],
    ),
    (
        "concat",
        "concat",
        lambda x, p: mb.concat(values=[x, p], axis=1),
        lambda x, p: np.concatenate([x, p], 1),
    ),
    (
        "concat_interleave",
        "concat",
        lambda x, p: mb.concat(values=[x, p], axis=1, interleave=True),
        lambda x, p: np.stack([x, p], 2).reshape(1, 8, 8, 8),
    ),
    # The shape arithmetic of programs with flexible input sizes: shape, gather (also of scalars), concat.
    ("shape", "shape", lambda x, p: mb.cast(x=mb.shape(x=x), dtype="fp32"), lambda x, p: np.float32(x.shape)),
    (
        "gather",
        "gather",
        lambda x, p: mb.gather(x=x, indices=np.array([2, 0], np.int32), axis=1),
        lambda x, p: np.take(x, [2, 0], axis=1),
    ),
    (
        "concat_scalars",
        "concat",
        lambda x, p: mb.cast(
            x=mb.concat(
                values=[mb.gather(x=mb.shape(x=x), indices=0), mb.gather(x=mb.shape(x=x), indices=-1)], axis=0
            ),
            dtype="fp32",
        ),
        lambda x, p: np.float32([x.shape[0], x.shape[-1]]),
    ),
    (
        "reshape",
        "reshape",
        lambda x, p: mb.reshape(x=x, shape=[1, 16, 16]),
        lambda x, p: x.reshape(1, 16, 16),
    ),
    (
        "transpose",
        "transpose",
        lambda x, p: mb.transpose(x=x, perm=[0, 2, 3, 1]),
        lambda x, p: x.transpose(0, 2, 3, 1),
    ),
    (
        "linear",
        "linear",
        lambda x, p: mb.linear(x=x, weight=W_LINEAR, bias=BIAS6),
        lambda x, p: F.linear(t(x), t(W_LINEAR), t(BIAS6)).numpy(),
    ),
    (
        "matmul_batched",
        "matmul",
        lambda x, p: mb.matmul(
            x=mb.reshape(x=x, shape=[4, 8, 8]), y=mb.reshape(x=p, shape=[4, 8, 8]), transpose_y=True
        ),
        lambda x, p: x.reshape(4, 8, 8) @ p.reshape(4, 8, 8).transpose(0, 2, 1),
    ),
    (
        "pixel_shuffle",
        "pixel_shuffle",
        lambda x, p: mb.pixel_shuffle(x=x, upscale_factor=2),
        lambda x, p: torch.nn.functional.pixel_shuffle(torch.from_numpy(x), 2).numpy(),
    ),
    ("tile", "tile", lambda x, p: mb.tile(x=x, reps=[1, 2, 1, 3]), lambda x, p: np.tile(x, (1, 2, 1, 3))),
    # torch.ones_like (the normalized colour transform of the zoo student)
    (
        "fill_like",
        "fill_like",
        lambda x, p: mb.fill_like(ref_tensor=x, value=np.float32(1.5)),
        lambda x, p: np.full(x.shape, 1.5, np.float32),
    ),
    ("squeeze", "squeeze", lambda x, p: mb.squeeze(x=x, axes=[0]), lambda x, p: x[0]),
    ("expand_dims", "expand_dims", lambda x, p: mb.expand_dims(x=x, axes=[0]), lambda x, p: x[None]),
    (
        "conv_custom_stride2",
        "conv",
        lambda x, p: mb.conv(
            x=x, weight=W_DENSE, bias=BIAS6, strides=[2, 2], pad_type="custom", pad=[1, 0, 2, 1]
        ),
        lambda x, p: torch_conv(x, W_DENSE, BIAS6, 2, (2, 1, 1, 0)),
    ),
    (
        "conv_pointwise",
        "conv",
        lambda x, p: mb.conv(x=x, weight=W_POINTWISE),
        lambda x, p: torch_conv(x, W_POINTWISE),
    ),
    (
        "conv_depthwise_same",
        "conv",
        lambda x, p: mb.conv(x=x, weight=W_DEPTHWISE, groups=4, pad_type="same"),
        lambda x, p: torch_conv(x, W_DEPTHWISE, padding=(1, 1, 1, 1), groups=4),
    ),
    (
        "conv_grouped_dilated",
        "conv",
        lambda x, p: mb.conv(x=x, weight=W_GROUPED, groups=2, dilations=[2, 2], pad_type="valid"),
        lambda x, p: torch_conv(x, W_GROUPED, dilation=2, groups=2),
    ),
    (
        "conv_same_lower_stride2",
        "conv",
        lambda x, p: mb.conv(x=x, weight=W_DENSE[:, :, :2, :2], strides=[2, 2], pad_type="same_lower"),
        lambda x, p: torch_conv(x, W_DENSE[:, :, :2, :2], stride=2, padding=same_padding(8, 2, 2, True) * 2),
    ),
    (
        "conv_transpose_custom",
        "conv_transpose",
        lambda x, p: mb.conv_transpose(
            x=x, weight=W_TRANSPOSED, bias=BIAS3, strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1]
        ),
        lambda x, p: F.conv_transpose2d(t(x), t(W_TRANSPOSED), t(BIAS3), stride=2, padding=1).numpy(),
    ),
    (
        "conv_transpose_output_shape",
        "conv_transpose",
        lambda x, p: mb.conv_transpose(x=x, weight=W_TRANSPOSED, strides=[2, 2], output_shape=[1, 3, 17, 17]),
        lambda x, p: F.conv_transpose2d(t(x), t(W_TRANSPOSED), stride=2).numpy(),
    ),
    (
        "conv_transpose_grouped",
        "conv_transpose",
        lambda x, p: mb.conv_transpose(x=x, weight=W_TRANSPOSED_GROUPED, groups=2, strides=[2, 2]),
        lambda x, p: F.conv_transpose2d(t(x), t(W_TRANSPOSED_GROUPED), stride=2, groups=2).numpy(),
    ),
    (
        "instance_norm",
        "instance_norm",
        lambda x, p: mb.instance_norm(x=x, gamma=GAMMA, beta=BETA, epsilon=1e-3),
        lambda x, p: F.instance_norm(t(x), weight=t(GAMMA), bias=t(BETA), eps=1e-3).numpy(),
    ),
    (
        "batch_norm",
        "batch_norm",
        lambda x, p: mb.batch_norm(x=x, mean=MEAN, variance=VARIANCE, gamma=GAMMA, beta=BETA, epsilon=1e-4),
        lambda x, p: F.batch_norm(t(x), t(MEAN), t(VARIANCE), t(GAMMA), t(BETA), eps=1e-4).numpy(),
    ),
    (
        "layer_norm",
        "layer_norm",
        lambda x, p: mb.layer_norm(x=x, axes=[1, 2, 3], epsilon=1e-5),
        lambda x, p: F.layer_norm(t(x), SHAPE[1:], eps=1e-5).numpy(),
    ),
    (
        "upsample_nearest",
        "upsample_nearest_neighbor",
        lambda x, p: mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=3),
        lambda x, p: torch_interp(x, scale_factor=(2, 3), mode="nearest"),
    ),
    (
        "upsample_bilinear_half_pixel",
        "upsample_bilinear",
        lambda x, p: mb.upsample_bilinear(
            x=x, scale_factor_height=2.0, scale_factor_width=2.0, align_corners=False
        ),
        lambda x, p: torch_interp(x, scale_factor=2, mode="bilinear", align_corners=False),
    ),
    (
        "upsample_bilinear_align_corners",
        "upsample_bilinear",
        lambda x, p: mb.upsample_bilinear(
            x=x, scale_factor_height=2.0, scale_factor_width=3.0, align_corners=True
        ),
        lambda x, p: torch_interp(x, size=(16, 24), mode="bilinear", align_corners=True),
    ),
    (
        "resize_nearest",
        "resize_nearest_neighbor",
        lambda x, p: mb.resize_nearest_neighbor(x=x, target_size_height=12, target_size_width=20),
        lambda x, p: torch_interp(x, size=(12, 20), mode="nearest"),
    ),
    (
        "resize_bilinear_unaligned",
        "resize_bilinear",
        lambda x, p: mb.resize_bilinear(
            x=x, target_size_height=12, target_size_width=20, sampling_mode="UNALIGN_CORNERS"
        ),
        lambda x, p: torch_interp(x, size=(12, 20), mode="bilinear", align_corners=False),
    ),
    (
        "resize_bilinear_aligned",
        "resize_bilinear",
        lambda x, p: mb.resize_bilinear(
            x=x, target_size_height=5, target_size_width=13, sampling_mode="ALIGN_CORNERS"
        ),
        lambda x, p: torch_interp(x, size=(5, 13), mode="bilinear", align_corners=True),
    ),
    (
        "avg_pool",
        "avg_pool",
        lambda x, p: mb.avg_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"),
        lambda x, p: F.avg_pool2d(t(x), 2).numpy(),
    ),
    (
        "avg_pool_exclude_padding",
        "avg_pool",
        lambda x, p: mb.avg_pool(
            x=x,
            kernel_sizes=[3, 3],
            strides=[1, 1],
            pad_type="custom",
            pad=[1, 1, 1, 1],
            exclude_padding_from_average=True,
        ),
        lambda x, p: F.avg_pool2d(t(x), 3, 1, 1, count_include_pad=False).numpy(),
    ),
    (
        "max_pool",
        "max_pool",
        lambda x, p: mb.max_pool(
            x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1]
        ),
        lambda x, p: F.max_pool2d(t(x), 3, 2, 1).numpy(),
    ),
    (
        "constexpr_affine_dequantize",
        "constexpr_affine_dequantize",
        lambda x, p: mb.mul(
            x=x,
            y=mb.constexpr_affine_dequantize(quantized_data=Q_DATA, zero_point=Q_ZERO, scale=Q_SCALE, axis=0),
        ),
        lambda x, p: x * (Q_SCALE[:, None, None] * (Q_DATA.astype(np.float32) - Q_ZERO[:, None, None])),
    ),
    (
        "constexpr_lut_to_dense_ios16",
        "constexpr_lut_to_dense",
        lambda x, p: mb.mul(
            x=x,
            y=mb.constexpr_lut_to_dense(
                lut=LUT, indices=pack_lsb_first(LUT_INDICES, 2), shape=np.array([4, 1, 1], np.uint32)
            ),
        ),
        lambda x, p: x * LUT[LUT_INDICES].reshape(4, 1, 1),
    ),
    (
        "constexpr_cast",
        "constexpr_cast",
        lambda x, p: mb.mul(
            x=x,
            y=mb.constexpr_cast(source_val=GAMMA.astype(np.float16).reshape(4, 1, 1), output_dtype="fp32"),
        ),
        lambda x, p: x * GAMMA.astype(np.float16).astype(np.float32).reshape(4, 1, 1),
    ),
    (
        "constexpr_sparse_to_dense_ios16",
        "constexpr_sparse_to_dense",
        lambda x, p: mb.mul(
            x=x,
            y=mb.constexpr_sparse_to_dense(
                nonzero_data=SPARSE_DATA,
                mask=np.packbits(SPARSE_MASK, bitorder="little"),
                shape=np.array([4, 1, 1], np.uint32),
            ),
        ),
        lambda x, p: x * np.array([0.5, 0, -1.5, 2.5], np.float32).reshape(4, 1, 1),
    ),
]


def _blockwise_expected(x, p):
    offset = np.repeat(np.repeat(INT4_OFFSET, 2, axis=0), 2, axis=2).astype(np.float32)
    scale = np.repeat(np.repeat(BLOCK_SCALE, 2, axis=0), 2, axis=2)
    return x * (scale * (INT4_DATA.astype(np.float32) - np.repeat(offset, 8, axis=1)))


def _block_lut_expected(x, p):
    lut = np.repeat(BLOCK_LUT[:, 0, 0, :, 0], 2, axis=0)  # (4, 4): one palette per pair of channels
    return x * np.take_along_axis(
        lut[:, None, :], UINT2_INDICES.reshape(4, 1, 64).astype(np.int64), 2
    ).reshape(4, 8, 8)


def _vector_lut_expected(x, p):
    vectors = VECTOR_LUT[0, 0, 0][VECTOR_INDICES]  # (2, 8, 8, 2): vector elements fill axis 0
    return x * np.moveaxis(vectors, -1, 1).reshape(4, 8, 8)


CASES_IOS18 = [
    (
        "constexpr_blockwise_shift_scale_int4",
        "constexpr_blockwise_shift_scale",
        lambda x, p: mb.mul(
            x=x,
            y=mb.constexpr_blockwise_shift_scale(
                data=INT4_DATA.astype(types.np_int4_dtype),
                scale=BLOCK_SCALE,
                offset=INT4_OFFSET.astype(types.np_int4_dtype),
            ),
        ),
        _blockwise_expected,
    ),
    (
        "constexpr_lut_to_dense_blockwise_uint2",
        "constexpr_lut_to_dense",
        lambda x, p: mb.mul(
            x=x,
            y=mb.constexpr_lut_to_dense(indices=UINT2_INDICES.astype(types.np_uint2_dtype), lut=BLOCK_LUT),
        ),
        _block_lut_expected,
    ),
    (
        "constexpr_lut_to_dense_vector",
        "constexpr_lut_to_dense",
        lambda x, p: mb.mul(
            x=x,
            y=mb.constexpr_lut_to_dense(
                indices=VECTOR_INDICES.astype(types.np_uint2_dtype), lut=VECTOR_LUT, vector_axis=0
            ),
        ),
        _vector_lut_expected,
    ),
]


def _convert_cases(cases, opset, folder):
    @mb.program(input_specs=[mb.TensorSpec(shape=SHAPE), mb.TensorSpec(shape=SHAPE)], opset_version=opset)
    def program(x, p):
        return tuple(mb.identity(x=build(x, p), name=case_id) for case_id, _, build, _ in cases)

    model = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=opset,
        compute_precision=ct.precision.FLOAT32,
        pass_pipeline=ct.PassPipeline.EMPTY,
    )
    path = folder / f"guard_{opset.name}.mlpackage"
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def guard_programs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coreml_guard")
    return {
        "iOS16": (_convert_cases(CASES_IOS16, ct.target.iOS16, folder), CASES_IOS16),
        "iOS18": (_convert_cases(CASES_IOS18, ct.target.iOS18, folder), CASES_IOS18),
    }


@pytest.mark.parametrize("opset", ["iOS16", "iOS18"])
def test_every_op_matches_numpy_and_coremltools_shapes(guard_programs, opset):
    path, cases = guard_programs[opset]
    interpreter = load_interpreter(path)  # raises if any op's output shape differs from the spec's type
    outputs = run_program(interpreter, {"x": X, "p": P})
    assert outputs.first_nonfinite is None
    failures = []
    for case_id, _, _, expect in cases:
        result, expected = outputs[case_id], np.asarray(expect(X, P))
        declared = interpreter.program.output_types[case_id].shape  # coremltools' type inference
        if result.shape != tuple(declared) or result.shape != expected.shape:
            failures.append(
                f"{case_id}: shape {result.shape}, coremltools {declared}, expected {expected.shape}"
            )
        elif result.dtype != expected.dtype and expected.dtype == np.float16:
            failures.append(f"{case_id}: dtype {result.dtype}, expected float16")
        elif not np.allclose(result.astype(np.float32), expected.astype(np.float32), rtol=1e-4, atol=1e-4):
            error = np.abs(result.astype(np.float32) - expected).max()
            failures.append(f"{case_id}: max-abs error {error:.3g}")
    assert not failures, "; ".join(failures)


def test_guard_covers_every_supported_op(guard_programs):
    tested = {"const"}
    for path, cases in guard_programs.values():
        program_ops = set(load_interpreter(path).program.op_types())
        for case_id, op_type, _, _ in cases:
            assert op_type in program_ops, f"{case_id}: {op_type} was optimized out of the guard program"
            tested.add(op_type)
    assert sorted(set(supported_ops()) - tested) == []
