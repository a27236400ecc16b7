"""`pocketgan explain`, `--keep-float` and int8-full on tiny seeded models.

The fragile model (export_nets.FragileNet) has one layer, `spiky`, whose activations span ~1e4: int8 rounds
their bulk away and parity fails. The triage must name it first; `--keep-float auto` must pass with <= 2
layers in float.
"""

import json

import pytest

from pocketgan.errors import UsageError

FRAGILE_SPEC = "export_nets:fragile_net"
SIZE = 32
FORMATS = ("onnx", pytest.param("tflite", marks=pytest.mark.tflite))


@pytest.fixture
def run_cli(capsys):
    """Run `pocketgan ARGS...` in this process: (exit code, stdout, stderr)."""
    from pocketgan.cli import main

    def run(*args):
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err

    return run


def _export(out, formats, precisions, spec=FRAGILE_SPEC, **options):
    from pocketgan.export import ExportConfig, export

    config = ExportConfig(
        formats=formats, precisions=precisions, size=SIZE, out=str(out), calibration_count=16, **options
    )
    result = export(spec, config)
    return {(a.format, a.precision): a for a in result.artifacts}


@pytest.fixture(scope="module")
def fragile_int8(tmp_path_factory):
    pytest.importorskip("torch")
    return _export(tmp_path_factory.mktemp("fragile"), ("onnx", "tflite"), ("int8",), name="fragile")


@pytest.fixture(scope="module")
def fragile_auto(tmp_path_factory):
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("fragile_auto")
    return _export(out, ("onnx", "tflite"), ("int8",), name="fragile", keep_float_budget_db=35.0)


def _ok(artifact):
    if artifact.status.startswith("unavailable"):
        pytest.skip(artifact.status)
    assert artifact.status == "ok", artifact.status
    return artifact


@pytest.mark.parametrize("fmt", FORMATS)
def test_explain_names_the_fragile_layer_first(fragile_int8, fmt):
    from pocketgan.export.explain import explain

    artifact = _ok(fragile_int8[(fmt, "int8")])
    assert artifact.manifest["parity"]["passed"] is False  # the fragile layer breaks plain int8
    result = explain(artifact.path, images=8)
    top = result.ranked[0]
    assert top.module == "spiky", [(r.layer, r.drop_db) for r in result.ranked[:3]]
    assert result.first_jump.module == "spiky"
    conv = next(r for r in result.rows if r.module == "spiky.conv")  # its input: fine, then the peak
    assert top.sqnr_db < 10 and conv.sqnr_db > 30 and top.drop_db > 25
    payload = result.to_json()
    assert payload["ranked"][0]["layer"] == "spiky" and payload["first_jump"]["tensor"] == top.tensor


@pytest.mark.parametrize("fmt", FORMATS)
def test_keep_float_auto_fixes_parity_with_at_most_two_layers(fragile_auto, fmt):
    from pocketgan.manifest import read_manifest

    artifact = _ok(fragile_auto[(fmt, "int8")])
    manifest = read_manifest(artifact.path)
    assert manifest["parity"]["passed"] is True, manifest["parity"]
    assert 1 <= len(manifest["keep_float"]) <= 2 and manifest["keep_float"][0] == "spiky"
    search = manifest["keep_float_search"]
    assert search["passed"] and search["budget_db"] == 35.0
    assert search["steps"][0] == {"keep_float": [], "psnr_db": pytest.approx(search["steps"][0]["psnr_db"])}
    assert search["steps"][0]["psnr_db"] < 35.0 <= search["steps"][-1]["psnr_db"]


def test_keep_float_list_leaves_those_layers_unquantized(tmp_path):
    onnx = pytest.importorskip("onnx")
    artifact = _ok(_export(tmp_path, ("onnx",), ("int8",), keep_float=("spiky", "mix"))[("onnx", "int8")])
    assert artifact.manifest["keep_float"] == ["spiky", "mix"]
    assert artifact.manifest["parity"]["passed"] is True
    graph = onnx.load(str(artifact.path)).graph
    quantized = {node.input[0] for node in graph.node if node.op_type == "QuantizeLinear"}
    peaks = {out for node in graph.node if node.op_type == "Mul" for out in node.output}
    assert peaks and not peaks & quantized  # spiky's output reaches mix in float
    convs = [node for node in graph.node if node.op_type == "Conv"]
    float_convs = [node for node in convs if not any("DequantizeLinear" in i for i in node.input[:1])]
    assert len(convs) == 4 and len(float_convs) == 2  # spiky.conv and mix; stem and head are int8


def test_keep_float_refuses_unknown_layers_and_other_precisions(tmp_path):
    from pocketgan.export import ExportConfig

    with pytest.raises(UsageError, match="no layer nope"):
        _export(tmp_path, ("onnx",), ("int8",), keep_float=("nope",))
    with pytest.raises(UsageError, match="applies to --precision int8"):
        ExportConfig(formats=("onnx",), precisions=("fp32",), keep_float=("stem",))


def test_keep_float_option_parsing():
    from pocketgan.export.cli import keep_float_option
    from pocketgan.export.parity import THRESHOLDS

    assert keep_float_option(None) == ((), None)
    assert keep_float_option("auto") == ((), THRESHOLDS["int8"][1])
    assert keep_float_option("auto:38.5") == ((), 38.5)
    assert keep_float_option("spiky, mix,spiky") == (("spiky", "mix"), None)
    with pytest.raises(UsageError, match="budget"):
        keep_float_option("auto:loud")


def test_explain_and_parity_cli_point_at_each_other(fragile_int8, tmp_path, run_cli):
    artifact = _ok(fragile_int8[("onnx", "int8")])
    code, _, err = run_cli("parity", "--artifacts", str(artifact.path.parent))
    assert code == 1 and f"pocketgan explain {artifact.path}" in err
    code, out, err = run_cli("explain", str(artifact.path), "--images", "2", "--json", "-")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["format"] == "onnx" and payload["ranked"][0]["layer"] == "spiky"
    code, _, err = run_cli("explain", str(tmp_path / "none.onnx"))
    assert code == 2 and err.startswith("error:")


@pytest.mark.parametrize("fmt", FORMATS)
def test_int8_full_has_no_float_ops_and_int8_says_why_not(artifact_of, fmt):
    from pocketgan.export.integer import float_ops

    full = _ok(artifact_of(fmt, "int8-full"))
    assert full.manifest["npu"] == float_ops(full.path)
    assert full.manifest["npu"]["npu_ready"] and full.manifest["npu"]["float_ops"] == []
    assert full.manifest["npu"]["verdict"].startswith("NPU-ready")
    if fmt == "tflite":  # integer image I/O, with its quantization in the manifest
        assert full.manifest["input"]["dtype"] == "int8" and "quantization" in full.manifest["input"]
    partial = _ok(artifact_of(fmt, "int8")).manifest["npu"]
    assert not partial["npu_ready"] and partial["float_ops"]
    assert partial["verdict"].startswith(f"not NPU-ready: {len(partial['float_ops'])} of")


def test_inspect_lists_float_ops(artifact_of, run_cli):
    path = _ok(artifact_of("onnx", "int8")).path
    code, out, err = run_cli("inspect", str(path))
    assert code == 0, err
    assert "not NPU-ready" in out and "Mul" in out


@pytest.mark.coreml
def test_explain_reads_coreml_through_the_reference_interpreter(artifact_of):
    from pocketgan.export.explain import explain

    artifact = _ok(artifact_of("coreml", "fp16"))
    result = explain(artifact.path, images=2)
    assert len(result.rows) >= result.torch_tensors // 2, (len(result.rows), result.torch_tensors)
    assert {r.match for r in result.rows} == {"name"}
    assert min(r.sqnr_db for r in result.rows) > 30 and result.first_jump is None  # fp16 rounding only


def test_float_gaps_get_a_qdq_pair_until_no_op_is_float():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from pocketgan.export.integer import onnx_float_nodes
    from pocketgan.export.onnx_exporter import quantize_float_gaps

    shape = [1, 4, 4, 4]
    nodes = [
        helper.make_node("QuantizeLinear", ["image", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
        helper.make_node("Tanh", ["dq"], ["t"]),  # not in onnxruntime's QDQ registry: left float
        helper.make_node("DepthToSpace", ["t"], ["d"], blocksize=2),
        helper.make_node("QuantizeLinear", ["d", "s", "z"], ["q2"]),
        helper.make_node("DequantizeLinear", ["q2", "s", "z"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "gaps",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 8, 8])],
        [
            numpy_helper.from_array(np.array(2 / 255, np.float32), "s"),
            numpy_helper.from_array(np.array(128, np.uint8), "z"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    assert [n.op_type for n in onnx_float_nodes(model.graph)] == ["Tanh", "DepthToSpace"]
    images = np.random.default_rng(0).uniform(-1, 1, (4, *shape[1:])).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"image": images[:1]})[0]
    quantize_float_gaps(model, [(image[None],) for image in images])
    onnx.checker.check_model(model)
    assert onnx_float_nodes(model.graph) == []
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"image": images[:1]})[0]
    assert np.abs(after - before).max() <= 2 * 2 / 255  # one more 8-bit rounding


@pytest.mark.parametrize("fmt", FORMATS)
def test_explain_feeds_a_context_students_thumbnail_as_its_artifact_gets_it(tmp_path, fmt):
    """A two-input artifact (image, context thumbnail) gets the runtime's thumbnail on both sides: the
    artifact's taps read it, and the torch reference runs on it. Left as zeros (or the torch side using the
    32 px image itself), every tensor after the context disagreed and explain blamed exact layers."""
    from pocketgan.export import ExportConfig, export
    from pocketgan.export.explain import explain

    config = ExportConfig(
        formats=(fmt,), precisions=("fp32",), size=SIZE, out=str(tmp_path), calibration_count=4
    )
    artifacts = [_ok(a) for a in export("export_nets:tiny_context_student", config).artifacts]
    # TFLite: one file per fixed size; explain the non-square one (its images must be H x W, not H x H).
    artifact = next((a for a in artifacts if "768x1024" in a.path.name), artifacts[0])
    result = explain(artifact.path, images=2)
    assert len(result.rows) >= result.torch_tensors // 2, (len(result.rows), result.torch_tensors)
    worst = min(result.rows, key=lambda r: r.sqnr_db)
    assert worst.sqnr_db > 60, (worst.layer, worst.tensor, worst.sqnr_db)
    assert result.first_jump is None and result.output_psnr_db > 60
