"""One resolver for every model spec: kind, source and hash per spec form; teachers are built on it."""

import ast
import hashlib

import pytest
from test_foundation_imports import project_modules

from pocketgan.errors import ModelLoadError, UsageError
from pocketgan.models import available_pretrained, build
from pocketgan.models.resolve import resolve, state_dict_sha256
from pocketgan.models.teacher import load_teacher


def test_registered_names_resolve_with_their_kind():
    student = resolve("student:mobile-resnet", width=8)
    assert (student.kind, student.source, student.name) == ("student", "registry", "mobile-resnet")
    teacher = resolve("cyclegan-resnet6")
    assert (teacher.kind, teacher.source) == ("teacher", "registry")
    expected = hashlib.sha256(f"cyclegan-resnet6|{state_dict_sha256(teacher.module)}".encode()).hexdigest()
    assert teacher.hash == expected


def test_pretrained_entries_are_registered_not_special_cased():
    assert "vintage" in available_pretrained()
    vintage = resolve("vintage")
    assert (vintage.kind, vintage.source, vintage.is_black_box) == ("teacher", "pretrained", False)
    assert vintage.path is not None and vintage.path.is_file()


def test_files_resolve_by_type(tmp_path):
    from pocketgan.checkpoint import save_checkpoint
    from pocketgan.manifest import sha256_file

    model = build("mobile-resnet", width=8)
    checkpoint = save_checkpoint(
        tmp_path / "s.pt",
        {"student": "mobile-resnet", "student_kwargs": {"width": 8}, "state_dict": model.state_dict()},
    )
    resolved = resolve(str(checkpoint))
    assert (resolved.kind, resolved.source, resolved.hash) == (
        "student",
        "checkpoint",
        sha256_file(checkpoint),
    )
    assert resolved.payload["student"] == "mobile-resnet"
    onnx_path = tmp_path / "t.onnx"
    onnx_path.write_bytes(b"not really onnx")
    black_box = resolve(str(onnx_path))
    assert black_box.is_black_box and black_box.source == "onnx" and black_box.hash == sha256_file(onnx_path)
    with pytest.raises(UsageError, match="not a torch module"):
        black_box.torch_module()
    with pytest.raises(ModelLoadError, match="no such teacher file"):
        resolve(str(tmp_path / "absent.pt2"), role="teacher")
    with pytest.raises(ModelLoadError, match="no such checkpoint"):
        resolve(str(tmp_path / "absent.pt"))


def test_teachers_come_from_the_resolver():
    from pocketgan.manifest import sha256_file

    vintage = resolve("vintage")
    assert load_teacher().hash == vintage.hash == sha256_file(vintage.path)
    with pytest.raises(UsageError, match="unknown model spec 'nope': use vintage, a registered name"):
        resolve("nope")


def test_evals_do_not_import_distill():
    """evals/ gets teachers from pocketgan.models, at module level and inside functions alike."""
    offenders = []
    for name, path in project_modules().items():
        if not name.startswith("pocketgan.evals"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pocketgan.distill"):
                offenders.append(f"{name}: from {node.module}")
            if isinstance(node, ast.Import) and any(
                a.name.startswith("pocketgan.distill") for a in node.names
            ):
                offenders.append(f"{name}: import pocketgan.distill")
    assert not offenders, offenders
