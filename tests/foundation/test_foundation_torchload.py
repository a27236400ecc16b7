"""Torch files load only if nothing in them can run code: crafted `.pt2` archives are refused by every verb."""

import io
import json
import logging
import zipfile

import pytest
import torch

from pocketgan.cli import main
from pocketgan.errors import ModelLoadError
from pocketgan.manifest import sha256_file, size_bytes
from pocketgan.torchload import load_exported_program, load_torch_file

SIZE = 16


class _Payload:
    """Unpickles to a real sample input, creating `marker` on the way: the archive still works."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        source = f"(open({self.marker!r}, 'w').close(), __import__('torch').zeros(1, 3, {SIZE}, {SIZE}))[1]"
        return (eval, (source,))


def _export(path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.Tanh()).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(1, 3, SIZE, SIZE),)), str(path))
    return model


def _rewrite(path, changes):
    """Replace or add records of a .pt2 zip; `changes` maps a record (below the root folder) to bytes."""
    source = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    root = source.namelist()[0].split("/")[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in source.infolist():
            record = info.filename[len(root) + 1 :]
            out.writestr(info, changes.pop(record) if record in changes else source.read(info))
        for record, data in changes.items():
            out.writestr(f"{root}/{record}", data)


def _read_json(path, record):
    records = zipfile.ZipFile(path)
    return json.loads(records.read(records.namelist()[0].split("/")[0] + "/" + record))


def _pickled(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@pytest.fixture
def crafted_pt2(tmp_path):
    """A valid ExportedProgram whose pickled sample inputs create a marker file when unpickled."""
    path, marker = tmp_path / "teacher.pt2", tmp_path / "payload-ran"
    _export(path)
    _rewrite(path, {"data/sample_inputs/model.pt": _pickled(((_Payload(marker),), {}))})
    return path, marker


def test_the_crafted_archive_runs_its_payload_in_plain_torch(crafted_pt2, caplog):
    """What the refusals below guard against: torch.export.load falls back to the unsafe unpickler."""
    path, marker = crafted_pt2
    caplog.set_level(logging.CRITICAL, "torch._export.serde.serialize")  # its fallback warning is malformed
    program = torch.export.load(str(path))
    assert marker.exists() and program.module()(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 3, SIZE, SIZE)


def test_a_benign_archive_loads_and_matches_its_model(tmp_path):
    model = _export(tmp_path / "ok.pt2")
    x = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    loaded = load_exported_program(tmp_path / "ok.pt2").module()
    torch.testing.assert_close(loaded(x), model(x).detach())


def test_pickled_sample_inputs_that_run_code_are_refused(crafted_pt2):
    path, marker = crafted_pt2
    with pytest.raises(ModelLoadError, match=r"refused: data/sample_inputs/model.pt would run code") as info:
        load_exported_program(path)
    assert "weights_only=False" not in str(info.value) and "it calls" in str(info.value)
    assert not marker.exists()


def test_a_pickled_weight_that_runs_code_is_refused(tmp_path):
    """torch loads `use_pickle` weights with the unrestricted unpickler outright (no safe attempt first)."""
    path, marker = tmp_path / "w.pt2", tmp_path / "payload-ran"
    _export(path)
    table = _read_json(path, "data/weights/model_weights_config.json")
    table["config"]["0.weight"]["use_pickle"] = True
    _rewrite(
        path,
        {
            "data/weights/model_weights_config.json": json.dumps(table).encode(),
            "data/weights/" + table["config"]["0.weight"]["path_name"]: _pickled(_Payload(marker)),
        },
    )
    with pytest.raises(ModelLoadError, match=r"data/weights/weight_0 would run code"):
        load_exported_program(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "record, data, words",
    [
        ("data/constants/opaque_obj_0", b"\x80\x04K\x01.", "custom Python object"),
        ("data/aotinductor/model/model.so", b"\x7fELF", "not a kind of record PocketGAN loads"),
    ],
    ids=["opaque-object", "compiled-library"],
)
def test_records_only_code_can_load_are_refused(tmp_path, record, data, words):
    path = tmp_path / "x.pt2"
    _export(path)
    _rewrite(path, {record: data})
    with pytest.raises(ModelLoadError, match=words):
        load_exported_program(path)


def test_a_shape_expression_that_is_code_is_refused(tmp_path):
    """torch parses symbolic shapes with sympy.sympify, an eval: a graph needs no pickle to run code."""
    path, marker = tmp_path / "expr.pt2", tmp_path / "payload-ran"
    _export(path)
    program = _read_json(path, "models/model.json")
    tensor = program["graph_module"]["graph"]["tensor_values"]["input"]
    code = f"__import__('os').system('touch {marker}') + 1"
    tensor["sizes"][0] = {"as_expr": {"expr_str": code, "hint": {"as_int": 1}}}
    _rewrite(path, {"models/model.json": json.dumps(program).encode()})
    with pytest.raises(ModelLoadError, match="shape expression that is not plain sympy arithmetic"):
        load_exported_program(path)
    assert not marker.exists()


def test_dynamic_shapes_still_load(tmp_path):
    """Symbolic sizes are written as sympy text (`Mul(Integer(2), Symbol('s1', ...))`): they pass."""
    model = torch.nn.Conv2d(3, 3, 3, padding=1).eval()
    height, width = torch.export.Dim("height", min=8, max=512), torch.export.Dim("width", min=8, max=512)
    program = torch.export.export(
        model, (torch.zeros(1, 3, 16, 16),), dynamic_shapes=({2: 2 * height, 3: 2 * width},)
    )
    torch.export.save(program, str(tmp_path / "dynamic.pt2"))
    x = torch.rand(1, 3, 24, 40)
    torch.testing.assert_close(load_exported_program(tmp_path / "dynamic.pt2").module()(x), model(x).detach())


def test_a_checkpoint_that_runs_code_is_refused_in_our_words(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    path.write_bytes(_pickled({"state_dict": _Payload(marker)}))
    with pytest.raises(
        ModelLoadError, match=r"refused: the file would run code when loaded \(it calls"
    ) as info:
        load_torch_file(path)
    assert "weights_only" not in str(info.value) and not marker.exists()


def _artifacts_folder(tmp_path):
    """A folder with one (unrunnable) artifact and a matching manifest: eval reaches the teacher first."""
    folder = tmp_path / "dist"
    folder.mkdir()
    artifact = folder / "student.fp32.onnx"
    artifact.write_bytes(b"not run: the teacher is refused first")
    manifest = {"format": "onnx", "precision": "fp32", "sha256": sha256_file(artifact)}
    manifest["size_bytes"] = size_bytes(artifact)
    (folder / "student.fp32.onnx.manifest.json").write_text(json.dumps(manifest))
    return folder


VERBS = {
    "inspect": lambda pt2, tmp: ["inspect", str(pt2), "--size", str(SIZE)],
    "export": lambda pt2, tmp: ["export", str(pt2), "--format", "onnx", "--out", str(tmp / "out")],
    "distill": lambda pt2, tmp: [
        "distill",
        "--teacher",
        str(pt2),
        "--out",
        str(tmp / "run"),
        "--size",
        "32",
        "--steps",
        "2",
        "--threads",
        "1",
        "--cache-dir",
        str(tmp / "cache"),
        "--no-progress",
    ],  # fmt: skip
    "eval": lambda pt2, tmp: [
        "eval",
        "--teacher",
        str(pt2),
        "--artifacts",
        str(_artifacts_folder(tmp)),
        "--size",
        "32",
        "--out",
        str(tmp / "report"),
        "--no-progress",
    ],  # fmt: skip
}


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_refuses_the_crafted_archive_in_one_line(verb, crafted_pt2, tmp_path, capsys):
    path, marker = crafted_pt2
    with pytest.raises(SystemExit) as exit_info:
        main(VERBS[verb](path, tmp_path))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "refused" in err and str(path) in err
    assert not marker.exists()
