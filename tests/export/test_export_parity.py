"""The export matrix: every format x precision on a tiny seeded student, checked against torch."""

import json

import numpy as np
import pytest

from pocketgan.export import PRECISIONS, registered_exporters
from pocketgan.export.base import get_exporter
from pocketgan.export.parity import THRESHOLDS, compare

MATRIX = [(fmt, precision) for fmt in registered_exporters() for precision in PRECISIONS]


@pytest.mark.parametrize(("fmt", "precision"), MATRIX, ids=[f"{f}-{p}" for f, p in MATRIX])
def test_export_parity(artifact_of, fmt, precision):
    from pocketgan.manifest import read_manifest, sha256_file, validate_manifest

    artifact = artifact_of(fmt, precision)
    if artifact.status.startswith("unavailable"):
        pytest.skip(f"{fmt}-{precision}: {artifact.status}")
    assert artifact.status == "ok", artifact.status
    manifest = read_manifest(artifact.path)
    validate_manifest(manifest)
    assert manifest["sha256"] == sha256_file(artifact.path)
    assert (manifest["format"], manifest["precision"]) == (fmt, precision)
    assert manifest["source"]["kind"] == "teacher" or manifest["source"]["student"]
    parity = manifest["parity"]
    assert parity["images"] == ["astronaut", "grace_hopper"]
    if parity["verified_by"].startswith("unverified"):
        assert parity["verified_by"] == f"unverified: {get_exporter(fmt).unverified_reason}"
        assert parity["passed"] is None
        pytest.skip(f"{fmt}-{precision} converted but not run: {parity['verified_by']}")
    assert parity["passed"] is True, parity


def test_every_exporter_and_precision_is_in_the_matrix(tiny_export):
    tested = {(fmt, precision) for fmt, precision in MATRIX}
    missing = [(f, p) for f in registered_exporters() for p in PRECISIONS if (f, p) not in tested]
    assert not missing, f"not in the parity matrix: {missing}"
    attempted = {(a.format, a.precision) for a in tiny_export.artifacts}
    assert attempted == tested, "the matrix fixture must export every registered format x precision"
    assert set(THRESHOLDS) == set(PRECISIONS), "every precision needs one parity threshold"


def test_unavailable_precisions_say_why(artifact_of):
    assert artifact_of("onnx", "p6").status.startswith("unavailable: 6-bit palettization")
    assert artifact_of("coreml", "int8").status == (
        "unavailable: needs macOS (activation calibration runs Core ML prediction)"
    )
    assert artifact_of("executorch", "w8").status.startswith("unavailable: XNNPACK has no weight-only int8")


def test_compare_thresholds():
    reference = np.linspace(-1, 1, 3 * 16 * 16, dtype=np.float32).reshape(1, 3, 16, 16)
    assert compare(reference + 5e-4, reference, "fp32")["passed"]
    assert not compare(reference + 2e-3, reference, "fp32")["passed"]
    noisy = reference + np.random.default_rng(0).normal(0, 0.02, reference.shape)
    result = compare(noisy, reference, "int8")
    assert result["passed"] and 35 < result["psnr_db"] < 50
    assert not compare(noisy, reference, "fp16")["passed"]
    assert not compare(np.full_like(reference, np.nan), reference, "fp16")["passed"]


def test_onnx_passes_full_checker_has_nhwc_io_and_embeds_manifest(artifact_of):
    onnx = pytest.importorskip("onnx")
    path = artifact_of("onnx", "fp32").path
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 18
    embedded = json.loads({p.key: p.value for p in model.metadata_props}["pocketgan_manifest"])
    assert embedded["precision"] == "fp32"
    assert embedded["input"]["layout"] == embedded["output"]["layout"] == "NHWC"
    for tensor in (model.graph.input[0], model.graph.output[0]):  # NHWC, as TFLite and cameras
        assert [d.dim_value for d in tensor.type.tensor_type.shape.dim] == [1, 32, 32, 3]


@pytest.mark.tflite
def test_tflite_loads_with_nhwc_io(artifact_of):
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    for precision in ("fp32", "int8"):
        interpreter = interpreter_module.Interpreter(model_path=str(artifact_of("tflite", precision).path))
        interpreter.allocate_tensors()
        assert list(interpreter.get_input_details()[0]["shape"]) == [1, 32, 32, 3]
        assert list(interpreter.get_output_details()[0]["shape"]) == [1, 32, 32, 3]


@pytest.mark.coreml
def test_coreml_package_has_image_input(artifact_of):
    ct = pytest.importorskip("coremltools")
    for precision in ("fp32", "fp16", "w8", "p6"):
        model = ct.models.MLModel(str(artifact_of("coreml", precision).path), skip_model_load=True)
        spec = model.get_spec()
        image = spec.description.input[0].type
        assert image.WhichOneof("Type") == "imageType"
        assert image.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
        assert spec.specificationVersion >= 7  # iOS 16
        assert json.loads(model.user_defined_metadata["pocketgan_manifest"])["input"]["dtype"] == "image"


@pytest.mark.coreml
def test_coreml_w8_and_p6_compress_the_weights(artifact_of):
    ct = pytest.importorskip("coremltools")

    def op_types(precision):
        spec = ct.models.MLModel(str(artifact_of("coreml", precision).path), skip_model_load=True).get_spec()
        function = spec.mlProgram.functions["main"]
        return {op.type for op in function.block_specializations[function.opset].operations}

    assert op_types("p6") & {"constexpr_lut_to_dense"}
    assert op_types("w8") & {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"}


@pytest.mark.executorch
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_executorch_program_runs_in_xnnpack_and_counts_it(artifact_of, precision):
    pytest.importorskip("executorch")
    from pocketgan import runtime
    from pocketgan.export.executorch_exporter import describe_pte
    from pocketgan.manifest import read_manifest

    artifact = artifact_of("executorch", precision)
    assert artifact.status == "ok", artifact.status
    delegation = read_manifest(artifact.path)["export"]["delegation"]
    placement = describe_pte(artifact.path)
    assert placement["delegate_calls"] and set(placement["delegate_calls"]) == {"XnnpackBackend"}
    assert delegation["delegated_ops"]["aten_convolution_default"] == 6  # every conv of the tiny student
    convs = placement["delegated_ops"]
    assert convs["Conv2d"] + convs["DepthwiseConv2d"] == 6
    assert delegation["portable_nodes"] <= 2 + 5 * (precision == "fp16")  # layout copies; fp16 casts
    with runtime.load(artifact.path, threads=1) as session:
        assert session.backend == "executorch" and session.layout == "NHWC"
        assert session.input_spec.shape == (1, 32, 32, 3) and session.input_spec.dtype == "float32"
        assert session.engine.embedded_manifest()["precision"] == precision
