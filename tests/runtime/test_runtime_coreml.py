"""A Core ML package through runtime.load: image-input handling, backend choice, manifest with an image input."""

import json
import platform

import numpy as np
import pytest
from runtime_testkit import MODEL_SIZE, export_coreml_image_input, tiny_net

from pocketgan import runtime
from pocketgan.data import heldout_images
from pocketgan.errors import ModelLoadError
from pocketgan.images import to_nchw

pytestmark = pytest.mark.coreml


@pytest.fixture(scope="module")
def tiny_mlpackage(tmp_path_factory):
    pytest.importorskip("coremltools")
    pytest.importorskip("torch")
    if runtime.available_backends().get("coreml") != "ok" and (
        runtime.available_backends().get("coreml-reference") != "ok"
    ):
        pytest.skip("no Core ML engine here (coreml needs macOS; coreml-reference not installed)")
    return export_coreml_image_input(
        tiny_net(), tmp_path_factory.mktemp("coreml") / "tiny.mlpackage", MODEL_SIZE
    )


def test_mlpackage_with_image_input_matches_onnx(tiny_mlpackage, tiny_onnx):
    session = runtime.load(tiny_mlpackage)
    expected = "coreml" if platform.system() == "Darwin" else "coreml-reference"
    assert session.backend == expected
    assert session.input_spec.dtype == "image" and session.input_spec.shape == (1, MODEL_SIZE, MODEL_SIZE, 3)
    images = [image for _, image in heldout_images(MODEL_SIZE)]
    batch = to_nchw(images)
    onnx_session = runtime.load(tiny_onnx)
    assert np.abs(session.predict(batch) - onnx_session.predict(batch)).max() <= 1e-3
    for image in images:
        assert np.abs(session.run(image).astype(int) - onnx_session.run(image)).max() <= 1


def test_core_ml_manifest_with_image_input_is_accepted(tiny_mlpackage, tmp_path):
    import shutil

    package = tmp_path / "tiny.mlpackage"
    shutil.copytree(tiny_mlpackage, package)
    image_input = {
        "name": "image",
        "shape": [1, 3, MODEL_SIZE, MODEL_SIZE],
        "layout": "NCHW",
        "dtype": "image",
        "range": [0, 255],
        "scale": 2 / 255,
        "bias": [-1, -1, -1],
        "color": "RGB",
    }
    sidecar = package.with_name(package.name + ".manifest.json")
    sidecar.write_text(json.dumps({"format": "coreml", "input": image_input}))
    assert runtime.load(package).manifest["input"]["dtype"] == "image"
    sidecar.write_text(json.dumps({"format": "coreml", "input": {**image_input, "shape": [1, 3, 32, 32]}}))
    with pytest.raises(ModelLoadError, match="does not match"):
        runtime.load(package)
