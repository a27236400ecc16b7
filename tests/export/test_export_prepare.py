"""Preparation before any format: ConvTranspose rewrite, BatchNorm folding, op check, CLI failure paths."""

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from pocketgan.export.prepare import CroppedConvTranspose2d, fold_batchnorm, rewrite_conv_transpose  # noqa: E402

TRANSPOSES = [(3, 2, 1, 1), (3, 2, 1, 0), (4, 2, 1, 0), (5, 2, 2, 1), (3, 1, 1, 0)]


@pytest.mark.parametrize(("kernel", "stride", "padding", "output_padding"), TRANSPOSES)
def test_conv_transpose_rewrite_is_exact(kernel, stride, padding, output_padding):
    torch.manual_seed(0)
    original = nn.ConvTranspose2d(6, 4, kernel, stride=stride, padding=padding, output_padding=output_padding)
    x = torch.randn(2, 6, 9, 7)
    with torch.no_grad():
        assert (CroppedConvTranspose2d(original)(x) - original(x)).abs().max() < 1e-5


def test_rewrite_replaces_nested_layers_and_keeps_the_original():
    from export_nets import tiny_upsampler

    model = tiny_upsampler()
    rewritten, count = rewrite_conv_transpose(model)
    assert count == 1 and isinstance(rewritten.up, CroppedConvTranspose2d)
    assert isinstance(model.up, nn.ConvTranspose2d)


def test_batchnorm_folds_exactly():
    from export_nets import tiny_student

    model = tiny_student()
    folded, count = fold_batchnorm(model)
    assert count == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max() < 1e-5


@pytest.mark.tflite
def test_tflite_export_through_the_rewrite_matches_torch(tmp_path):
    pytest.importorskip("litert_torch")
    from pocketgan.export import ExportConfig, export

    result = export(
        "export_nets:tiny_upsampler",
        ExportConfig(formats=("tflite",), precisions=("fp32",), size=32, out=str(tmp_path), name="up"),
    )
    (artifact,) = result.artifacts
    assert artifact.status == "ok", artifact.status
    assert artifact.manifest["export"]["conv_transpose_rewritten"] == 1
    assert artifact.manifest["parity"]["passed"], artifact.manifest["parity"]


def test_exportability_names_the_op_and_layer():
    from export_nets import tiny_student, tiny_upsampler, with_recurrence

    from pocketgan.export import exportability, registered_exporters

    verdicts = exportability(with_recurrence(), 32)
    assert set(verdicts) == set(registered_exporters())
    assert all("GRU" in v and "'memory'" in v for v in verdicts.values())
    assert exportability(tiny_student(), 32)["onnx"] == "ok"
    assert "rewritten" in exportability(tiny_upsampler(), 32)["tflite"]


def _run_cli(args, capsys):
    from pocketgan.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err.strip()


def test_unsupported_op_exits_2_naming_it(tmp_path, capsys):
    code, err = _run_cli(
        [
            "export",
            "export_nets:with_recurrence",
            "--format",
            "onnx",
            "--precision",
            "fp32",
            "--size",
            "32",
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 2
    assert len(err.splitlines()) == 1 and "GRU" in err and "memory" in err


def test_bad_checkpoint_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    code, err = _run_cli(["export", str(bad), "--out", str(tmp_path / "dist")], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "broken.pt" in err
    code, err = _run_cli(["export", str(tmp_path / "missing.pt")], capsys)
    assert code == 2 and "no such checkpoint" in err


def test_bad_format_and_precision_exit_2(capsys):
    assert _run_cli(["export", "vintage", "--format", "caffe"], capsys)[0] == 2
    assert _run_cli(["export", "vintage", "--precision", "int4"], capsys)[0] == 2


def test_interrupted_export_leaves_no_finished_file(tmp_path, monkeypatch):
    from pocketgan.export import ExportConfig, export
    from pocketgan.export.onnx_exporter import OnnxExporter

    def interrupted(self, prepared, precision, path):
        path.write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(OnnxExporter, "export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export(
            "export_nets:tiny_student",
            ExportConfig(formats=("onnx",), precisions=("fp32",), size=32, out=str(tmp_path), validate=False),
        )
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".tmp-")] == []
    assert not any(tmp_path.rglob("*.onnx"))


@pytest.mark.slow
def test_vintage_teacher_exports_to_onnx_and_tflite_with_fp32_parity(tmp_path):
    from pocketgan.export import ExportConfig, export

    result = export(
        "vintage", ExportConfig(formats=("onnx", "tflite"), precisions=("fp32",), out=str(tmp_path))
    )
    for artifact in result.artifacts:
        assert artifact.status == "ok", artifact.status
        assert artifact.path.name == f"teacher.fp32.{artifact.format}"
        assert artifact.manifest["parity"]["passed"], artifact.manifest["parity"]


@pytest.mark.tflite
def test_tflite_int8_of_a_colour_basis_passes_parity_and_names_its_method(tmp_path):
    pytest.importorskip("ai_edge_quantizer")
    from pocketgan.export import ExportConfig, export

    result = export(
        "export_nets:colour_basis",
        ExportConfig(
            formats=("tflite",), precisions=("int8",), size=32, out=str(tmp_path), calibration_count=8
        ),
    )
    (artifact,) = result.artifacts
    assert artifact.status == "ok", artifact.status
    assert artifact.manifest["parity"]["passed"], artifact.manifest["parity"]
    assert artifact.manifest["export"]["int8_method"].startswith(("pt2e", "aeq-conv"))


def test_parity_module_imports_without_torch():
    import subprocess
    import sys

    code = "import sys; sys.modules['torch'] = None; import export.parity, export; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr[-500:]


def test_float_only_layers_are_named_as_torch_export_records_them():
    """The int8 exporters exclude `float_only` layers by the type string torch.export records per node."""
    from pocketgan.export.prepare import float_only_types
    from pocketgan.models import build

    model = build("patch-resnet", width=8, context_width=8).eval()
    names = float_only_types(model)
    # the global context (pooled statistics -> FiLM and colour matrix), the colour transform it sets and the
    # thumbnail's context encoder that feeds it
    assert sorted(names) == [
        "pocketgan.models.students.ColourTransform",
        "pocketgan.models.students.ContextEncoder",
        "pocketgan.models.students.GlobalContext",
    ]
    program = torch.export.export(model, (torch.zeros(1, 3, 16, 16),))
    recorded = {
        type_name
        for node in program.graph.nodes
        for _, type_name in (node.meta.get("nn_module_stack") or {}).values()
    }
    assert set(names) <= recorded


def test_thumb_norm_statistics_stay_in_float():
    """thumb_norm's per-channel standardization is its own float_only layer, recorded as such by torch.export
    (in int8 the shipped stop-38 student's TFLite fell to 25 dB from torch; in float it passes at 50 dB)."""
    from pocketgan.export.prepare import float_only_types
    from pocketgan.models import build

    model = build("patch-resnet", width=8, context_width=8, thumb_norm=True).eval()
    names = float_only_types(model)
    assert "pocketgan.models.students.ThumbNorm" in names
    program = torch.export.export(model, (torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16)))
    recorded = {
        type_name
        for node in program.graph.nodes
        for _, type_name in (node.meta.get("nn_module_stack") or {}).values()
    }
    assert "pocketgan.models.students.ThumbNorm" in recorded


def test_next_export_removes_what_a_killed_export_left(tmp_path, killed_mid_write):
    """A SIGKILL inside atomic_path leaves `.tmp-PID-*`; the next export into the folder removes it."""
    from pocketgan.export import ExportConfig, export

    killed_mid_write(tmp_path / "tiny.fp32.onnx")
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    config = ExportConfig(formats=("onnx",), precisions=("fp32",), size=32, out=str(tmp_path), validate=False)
    result = export("export_nets:tiny_student", config)
    assert [a.status for a in result.artifacts] == ["ok"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_keep_float_also_floats_ops_that_share_a_floated_ops_quantization():
    """PT2E's prepare looks up the node a SharedQuantizationSpec points at: when keep-float drops a node's
    annotation, the annotations sharing with it must go too (`--keep-float context_encoder` hit KeyError)."""
    pytest.importorskip("torchao")
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    from pocketgan.export.tflite_exporter import _shares_with

    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    relu = graph.call_function(torch.relu, (x,))
    pool = graph.call_function(torch.mean, (relu,))
    shared = QuantizationAnnotation(
        input_qspec_map={relu: SharedQuantizationSpec(relu)},
        output_qspec=SharedQuantizationSpec((relu, pool)),
    )
    assert _shares_with(shared, {relu})
    assert not _shares_with(shared, {pool}) and not _shares_with(None, {relu})
    assert not _shares_with(QuantizationAnnotation(), {relu})
