"""Artifacts of a context model (a student with a thumbnail input) at sizes other than the export size.

The tiny seeded patch-resnet student is exported with two inputs (image, context) and checked against torch
at 64x64 and at the non-square 160x96 (W x H); deliberately broken exports (an image size baked in, the
context input ignored) must fail that check.

Example: .venv/bin/python -m pytest tests/export/test_export_fullres.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

from pocketgan.export.parity import compare

SPEC = "export_nets:tiny_context_student"
SIZES = ((64, 64), (96, 160))  # (H, W): square, and non-square (160x96)


def _export(tmp_path, formats, precisions, name="ctx"):
    pytest.importorskip("torch")
    from pocketgan.export import ExportConfig, export

    config = ExportConfig(
        formats=formats,
        precisions=precisions,
        size=64,
        sizes=SIZES,
        out=str(tmp_path),
        calibration_count=4,
        name=name,
    )
    return export(SPEC, config)


def _torch_and_inputs(height: int, width: int):
    """A real photo resized to (H, W), its context thumbnail, and the torch student's output (NCHW floats)."""
    import torch
    from export_nets import tiny_context_student

    from pocketgan.data import heldout_images
    from pocketgan.images import context_thumbnail, resize, to_nchw

    image = resize(heldout_images(None)[0][1], (height, width))
    x, context = to_nchw([image]), to_nchw([context_thumbnail(image)])
    with torch.no_grad():
        y = tiny_context_student()(torch.from_numpy(x), torch.from_numpy(context)).numpy()
    return x, context, y


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("fullres"), ("onnx",), ("fp32", "int8"))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnx_context_artifact_is_dynamic_and_passes_at_every_size(onnx_export, precision):
    artifact = next(a for a in onnx_export.artifacts if a.precision == precision)
    assert artifact.status == "ok", artifact.status
    manifest = artifact.manifest
    assert manifest["input"]["sizes"] == {"dynamic": True, "multiple": 4, "min": 16, "max": 4096}
    assert manifest["context_input"]["name"] == "context"
    assert manifest["context_input"]["shape"] == [1, 256, 256, 3]
    assert manifest["context_input"]["thumbnail"] == "pocketgan.images.context_thumbnail"
    parity = manifest["parity"]
    assert set(parity["sizes"]) == {"64x64", "160x96"}
    assert all(entry["passed"] for entry in parity["sizes"].values()) and parity["passed"] is True


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnx_context_artifact_matches_torch_at_a_non_square_size(onnx_export, precision):
    """Independent of the export's own check: the runtime session on a 96x160 photo vs the torch student."""
    from pocketgan import runtime

    artifact = next(a for a in onnx_export.artifacts if a.precision == precision)
    x, context, reference = _torch_and_inputs(96, 160)
    with runtime.load(artifact.path) as session:
        assert session.has_context
        output = session.predict(x, context)
    assert output.shape == reference.shape == (1, 3, 96, 160)
    assert compare(output, reference, precision)["passed"]


def test_onnx_int8_weights_use_seven_bits(onnx_export):
    """reduce_range: U8S8 products of 8-bit weights saturate on x86 CPUs without VNNI (this export's
    parity at 160x96 was 33.4 dB there with 8-bit weights, 43.5 with 7); every int8 weight is in [-64, 64]."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    artifact = next(a for a in onnx_export.artifacts if a.precision == "int8")
    model = onnx.load(str(artifact.path))
    assert "7-bit weights" in artifact.manifest["export"]["int8_method"]
    weights = [
        numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8
    ]
    assert weights and all(w.size == 0 or int(np.abs(w).max()) <= 64 for w in weights)
    assert max(int(np.abs(w).max()) for w in weights if w.size) >= 60  # the range is used, not squashed


def test_an_artifact_with_its_image_size_baked_in_fails_at_the_non_square_size(tmp_path, monkeypatch):
    import pocketgan.export.onnx_exporter as onnx_exporter
    from pocketgan.export import prepare

    monkeypatch.setattr(prepare, "dynamic_image_shapes", lambda layout="NHWC": None)
    artifact = _export(tmp_path, ("onnx",), ("fp32",), name="baked").artifacts[0]
    assert onnx_exporter.OnnxExporter.dynamic_sizes  # the exporter claims dynamic sizes; the file is 64x64
    assert artifact.status.is_failed, artifact.status
    assert "takes the model size (64, 64), got (96, 160)" in str(artifact.status)


def test_an_artifact_that_ignores_the_context_fails_parity(tmp_path, monkeypatch):
    """An export that computes the grade from the image itself instead of the thumbnail input."""
    from pocketgan.export import prepare

    def own_context(self, x, context=None):
        return self.model(x.permute(0, 3, 1, 2), x.permute(0, 3, 1, 2) + 0 * context.mean()).permute(
            0, 2, 3, 1
        )

    monkeypatch.setattr(prepare.ChannelsLast, "forward", own_context)
    artifact = _export(tmp_path, ("onnx",), ("fp32",), name="own").artifacts[0]
    assert artifact.status == "ok", artifact.status
    parity = artifact.manifest["parity"]
    assert parity["sizes"]["160x96"]["passed"] is False
    assert parity["passed"] is False
    assert parity["sizes"]["160x96"]["max_abs"] > 1e-2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "precisions"),
    [("tflite", ("fp32", "int8")), ("coreml", ("fp32", "fp16")), ("executorch", ("fp32", "fp16"))],
)
def test_every_format_exports_a_context_model_that_passes_at_a_non_square_size(tmp_path, fmt, precisions):
    from pocketgan.export.base import get_exporter

    if not get_exporter(fmt).availability().is_ok:
        pytest.skip(f"{fmt}: {get_exporter(fmt).availability()}")
    result = _export(tmp_path, (fmt,), precisions)
    checked = [a for a in result.artifacts if a.status == "ok"]
    assert len(checked) == len(precisions) * (len(SIZES) if fmt == "tflite" else 1), result.artifacts
    for artifact in checked:
        parity = artifact.manifest["parity"]
        assert parity["passed"] is True, (artifact.path, parity)
        sizes = artifact.manifest["input"]["sizes"]
        if fmt == "tflite":  # one artifact per working size
            assert sizes["dynamic"] is False and len(sizes["fixed"]) == 1
        else:
            assert sizes["dynamic"] is True and set(parity["sizes"]) == {"64x64", "160x96"}
    if fmt == "tflite":
        names = sorted(a.path.name for a in checked)
        assert "ctx.fp32.160x96.tflite" in names and "ctx.fp32.tflite" in names


def test_executorch_int8_of_a_context_model_keeps_one_input():
    from pocketgan.export.base import get_exporter

    exporter = get_exporter("executorch")
    assert not exporter.takes_context("int8") and exporter.takes_context("fp32")


def test_sizes_option_reads_width_by_height_and_refuses_the_rest():
    from pocketgan.errors import UsageError
    from pocketgan.export.base import ExportConfig
    from pocketgan.export.cli import sizes_option

    assert sizes_option("1920x1080, 256x256") == ((1080, 1920), (256, 256))
    for bad in ("1920", "axb", ""):
        with pytest.raises(UsageError):
            ExportConfig(sizes=sizes_option(bad))
    with pytest.raises(UsageError, match="multiples of 4"):
        ExportConfig(sizes=((1080, 1922),))


def test_one_fp32_conversion_serves_every_precision_of_an_export(tmp_path, monkeypatch):
    import pocketgan.export.onnx_exporter as onnx_exporter

    calls = []
    convert = onnx_exporter._export_fp32
    monkeypatch.setattr(onnx_exporter, "_export_fp32", lambda *a: calls.append(a) or convert(*a))
    result = _export(tmp_path, ("onnx",), ("fp32", "fp16", "w8"), name="shared")
    assert [a.status for a in result.artifacts] == ["ok"] * 3, [a.status for a in result.artifacts]
    assert len(calls) == 1  # fp16 and w8 start from the first conversion's bytes
    for artifact in result.artifacts:
        assert artifact.manifest["parity"]["passed"] is True, (artifact.path, artifact.manifest["parity"])
