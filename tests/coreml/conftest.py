"""Fixtures for the coreml-reference tests: tiny torch models converted once per session (32 px)."""

from __future__ import annotations

import logging
from pathlib import Path

import coremltools as ct
import numpy as np
import pytest

pytest.importorskip("coremltools", reason="coreml tests need coremltools (pip install -e '.[full]')")
pytest.importorskip("torch")

from coreml_nets import SIZE, Overflow, TinyGenerator, convert, seeded  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _quiet_coremltools():
    logging.getLogger("coremltools").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def photo_batch() -> tuple[np.ndarray, np.ndarray]:
    """Two real photos at 32 px: uint8 (N, H, W, 3) pixels and the matching float32 (N, 3, H, W) in [-1, 1]."""
    from pocketgan.data import heldout_images

    pixels = np.stack([image for _, image in heldout_images(SIZE)])
    return pixels, (pixels.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """TinyGenerator as fp32, fp16, w8 (int8 per-channel weights) and p6 (6-bit palettized) .mlpackages."""
    import coremltools.optimize.coreml as cto

    folder = tmp_path_factory.mktemp("coreml_tiny")
    fp32 = convert(seeded(TinyGenerator()), folder / "tiny.fp32.mlpackage")
    models = {"fp32": fp32, "fp16": convert(seeded(TinyGenerator()), folder / "tiny.fp16.mlpackage", "fp16")}
    base = ct.models.MLModel(str(fp32), skip_model_load=True)
    w8 = cto.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=0)
    cto.linear_quantize_weights(base, cto.OptimizationConfig(global_config=w8)).save(
        str(folder / "tiny.w8.mlpackage")
    )
    p6 = cto.OpPalettizerConfig(nbits=6, weight_threshold=0)
    cto.palettize_weights(base, cto.OptimizationConfig(global_config=p6)).save(
        str(folder / "tiny.p6.mlpackage")
    )
    models["w8"], models["p6"] = folder / "tiny.w8.mlpackage", folder / "tiny.p6.mlpackage"
    return models


@pytest.fixture(scope="session")
def overflow_models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("coreml_overflow")
    return {
        precision: convert(seeded(Overflow()), folder / f"overflow.{precision}.mlpackage", precision)
        for precision in ("fp32", "fp16")
    }


@pytest.fixture(scope="session")
def compressed_pairs(tiny_models, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Compressed .mlpackage -> the same model with weights decompressed by coremltools itself.

    w8 / p6 are iOS16 ops (constexpr_affine_dequantize, constexpr_lut_to_dense); w4 (int4 per block) and
    p4 (4-bit per grouped channel) are the iOS18 ones (constexpr_blockwise_shift_scale, constexpr_lut_to_dense).
    """
    import coremltools.optimize.coreml as cto

    folder = tmp_path_factory.mktemp("coreml_compressed")
    ios18 = ct.models.MLModel(
        str(convert(seeded(TinyGenerator()), folder / "tiny18.fp32.mlpackage", target=ct.target.iOS18)),
        skip_model_load=True,
    )
    w4 = cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=4, weight_threshold=0
    )
    p4 = cto.OpPalettizerConfig(nbits=4, granularity="per_grouped_channel", group_size=4, weight_threshold=0)
    compressed = {
        "w8": ct.models.MLModel(str(tiny_models["w8"]), skip_model_load=True),
        "p6": ct.models.MLModel(str(tiny_models["p6"]), skip_model_load=True),
        "w4": cto.linear_quantize_weights(ios18, cto.OptimizationConfig(global_config=w4)),
        "p4": cto.palettize_weights(ios18, cto.OptimizationConfig(global_config=p4)),
    }
    pairs = {}
    for name, model in compressed.items():
        model.save(str(folder / f"{name}.mlpackage"))
        cto.decompress_weights(model).save(str(folder / f"{name}.decompressed.mlpackage"))
        pairs[name] = (folder / f"{name}.mlpackage", folder / f"{name}.decompressed.mlpackage")
    return pairs
