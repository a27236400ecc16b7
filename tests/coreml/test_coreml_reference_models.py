"""coreml-reference on converted tiny models: precisions vs torch, fp16 overflow, backend, errors, torch-free."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from coreml_nets import IMAGE_SCALE, Overflow, TinyGenerator, seeded, torch_reference

from pocketgan.errors import UnsupportedOpError
from pocketgan.runtime.coreml_reference import (
    VERIFIED_BY,
    load_interpreter,
    load_program,
    run_program,
    supported_ops,
)

pytestmark = pytest.mark.coreml

MIN_PSNR_DB = {"fp16": 45.0, "w8": 35.0, "p6": 35.0}


def psnr_db(output: np.ndarray, reference: np.ndarray) -> float:
    mse = float(np.mean((output.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return 10 * np.log10(4.0 / mse) if mse > 0 else float("inf")


def run_tiny(path, pixels: np.ndarray) -> tuple[np.ndarray, list]:
    outputs, nonfinite = [], []
    for image in pixels:
        result = run_program(path, {"input": image[None]})  # (1, H, W, 3) uint8 through the ImageType input
        nonfinite.append(result.first_nonfinite)
        outputs.append(next(iter(result.values())).astype(np.float32))
    return np.concatenate(outputs), nonfinite


def test_fp32_matches_torch_through_image_input(tiny_models, photo_batch):
    pixels, x = photo_batch
    output, nonfinite = run_tiny(tiny_models["fp32"], pixels)
    reference = torch_reference(seeded(TinyGenerator()), x)
    assert output.shape == reference.shape
    assert np.abs(output - reference).max() <= 1e-3
    assert nonfinite == [None, None]


@pytest.mark.parametrize("precision", ["fp16", "w8", "p6"])
def test_compressed_precisions_meet_psnr(tiny_models, photo_batch, precision):
    pixels, x = photo_batch
    output, nonfinite = run_tiny(tiny_models[precision], pixels)
    reference = torch_reference(seeded(TinyGenerator()), x)
    assert psnr_db(output, reference) >= MIN_PSNR_DB[precision]
    assert nonfinite == [None, None]


def test_compressed_weights_use_constexpr_ops(tiny_models):
    assert "constexpr_affine_dequantize" in load_program(tiny_models["w8"])[0].op_types()
    assert "constexpr_lut_to_dense" in load_program(tiny_models["p6"])[0].op_types()


@pytest.mark.parametrize("name", ["w8", "p6", "w4", "p4"])
def test_weight_decompression_matches_coremltools(compressed_pairs, photo_batch, name):
    compressed, decompressed = compressed_pairs[name]
    ops = load_program(compressed)[0].op_types()
    assert any(op.startswith("constexpr_") for op in ops)
    assert not any(op.startswith("constexpr_") for op in load_program(decompressed)[0].op_types())
    pixels, _ = photo_batch
    ours = run_program(compressed, {"input": pixels[:1]})
    theirs = run_program(decompressed, {"input": pixels[:1]})
    assert np.abs(next(iter(ours.values())) - next(iter(theirs.values()))).max() <= 1e-6


def test_fp16_program_rounds_every_op_to_fp16(tiny_models, photo_batch):
    pixels, _ = photo_batch
    interpreter = load_interpreter(tiny_models["fp16"])
    assert interpreter.program.is_fp16
    fp16_outputs = [
        name for step in interpreter.steps for name, vtype in step.outputs if vtype.dtype == "FLOAT16"
    ]
    assert fp16_outputs
    values = interpreter.trace({"input": pixels[:1]})
    for name in fp16_outputs:  # stored as float32, but every value is exactly representable in fp16
        assert np.array_equal(values[name], values[name].astype(np.float16).astype(np.float32))


def test_fp16_overflow_is_caught_and_named(overflow_models):
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    pixels = (x + 1) / IMAGE_SCALE
    clean = run_program(overflow_models["fp32"], {"input": pixels})
    assert clean.first_nonfinite is None
    reference = torch_reference(seeded(Overflow()), x)
    assert np.abs(next(iter(clean.values())) - reference).max() <= 1e-3

    broken = run_program(overflow_models["fp16"], {"input": pixels})
    output = next(iter(broken.values()))
    assert not np.isfinite(output).all()
    assert broken.first_nonfinite is not None
    op_type, op_name = broken.first_nonfinite
    program_ops = {(op.type, op.name) for op in load_program(overflow_models["fp16"])[0].operations}
    assert (op_type, op_name) in program_ops


def test_backend_registered_and_runs_session(tiny_models, photo_batch):
    from pocketgan import runtime

    assert runtime.available_backends()["coreml-reference"] == "ok"
    pixels, x = photo_batch
    session = runtime.load(str(tiny_models["fp32"]), backend="coreml-reference")
    assert session.backend == "coreml-reference"
    assert session.engine.verified_by == VERIFIED_BY
    assert VERIFIED_BY.startswith("coreml-reference ") and "not Apple's runtime" in VERIFIED_BY
    assert session.size == (32, 32)
    output = session.predict(x)
    reference = torch_reference(seeded(TinyGenerator()), x)
    assert output.shape == reference.shape and np.abs(output - reference).max() <= 1e-3
    assert session.engine.first_nonfinite is None
    image = session.run(pixels[0])
    assert image.shape == pixels[0].shape and image.dtype == np.uint8


def test_unsupported_op_names_op_and_lists_supported(tmp_path):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS16)
    def program(x):
        return mb.erf(x=x, name="erf_out")

    path = tmp_path / "erf.mlpackage"
    ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16).save(str(path))
    with pytest.raises(UnsupportedOpError) as error:
        run_program(path, {"x": np.zeros((1, 4), np.float32)})
    message = str(error.value)
    assert "erf" in message
    assert "supported ops: " in message
    assert all(op in message for op in supported_ops())


def test_imports_and_runs_without_torch(tiny_models, photo_batch, block_torch):
    pixels, _ = photo_batch
    np.save(tiny_models["fp32"].parent / "pixels.npy", pixels[:1])
    code = block_torch + textwrap.dedent(
        f"""
        import numpy as np
        import pocketgan.runtime.coreml_reference as ref
        assert "coremltools" not in sys.modules, "coremltools must be imported lazily"
        pixels = np.load({str(tiny_models["fp32"].parent / "pixels.npy")!r})
        out = ref.run_program({str(tiny_models["fp32"])!r}, {{"input": pixels}})
        assert "torch" not in sys.modules
        print(next(iter(out.values())).shape)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(1, 3, 32, 32)")
