"""Tiny seeded models exported once per test session (ONNX, TFLite fp32, TFLite int8 I/O) and test images."""

import numpy as np
import pytest
from PIL import Image
from runtime_testkit import (
    MODEL_SIZE,
    export_context_onnx,
    export_onnx,
    export_tflite,
    jpeg_bytes,
    quantize_tflite_int8,
    tiny_context_net,
    tiny_net,
    upright_test_image,
)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runtime_models")


@pytest.fixture(scope="session")
def tiny_onnx(model_dir):
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    return export_onnx(tiny_net(), model_dir / "tiny.fp32.onnx", MODEL_SIZE)


@pytest.fixture(scope="session")
def context_onnx(model_dir):
    """A two-input ONNX (image of dynamic size + 256² context thumbnail) with its manifest."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    return export_context_onnx(tiny_context_net(), model_dir / "context.fp32.onnx")


@pytest.fixture(scope="session")
def tiny_tflite(model_dir):
    pytest.importorskip("torch")
    pytest.importorskip("litert_torch")
    return export_tflite(tiny_net(), model_dir / "tiny.fp32.tflite", MODEL_SIZE)


@pytest.fixture(scope="session")
def tiny_tflite_int8(model_dir, tiny_tflite):
    pytest.importorskip("ai_edge_quantizer")
    return quantize_tflite_int8(tiny_tflite, model_dir / "tiny.int8.tflite", MODEL_SIZE)


@pytest.fixture
def photo_folder(tmp_path):
    """Broken-folder scenario: a good photo; 16-bit, RGBA, gray, EXIF-rotated variants; three broken files."""
    from pocketgan.data import heldout_images

    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    photo = heldout_images(96)[0][1]
    Image.fromarray(photo).save(folder / "good.png")
    whole = jpeg_bytes(photo)
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("this is not an image\n")
    gray16 = (np.linspace(0, 65535, 48 * 40).reshape(40, 48)).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "sixteen_bit.png")
    rgba = np.dstack([photo[:50, :70], np.full((50, 70), 128, np.uint8)])
    Image.fromarray(rgba).save(folder / "nested" / "alpha.png")
    Image.fromarray(photo[..., 1]).save(folder / "gray.jpg", quality=95)
    stored = np.rot90(upright_test_image(), k=1)  # orientation 6: viewers rotate 90° clockwise to display
    exif = Image.Exif()
    exif[0x0112] = 6
    (folder / "rotated.jpg").write_bytes(jpeg_bytes(np.ascontiguousarray(stored), exif=exif.tobytes()))
    return folder
