"""runtime.load checks a sidecar manifest's sha256 and size_bytes before any backend parses the file, once."""

import hashlib

import numpy as np
import pytest
from runtime_testkit import copy_model, write_sidecar

import pocketgan.manifest
import pocketgan.runtime.session
from pocketgan import runtime
from pocketgan.cli import main
from pocketgan.errors import IntegrityError


def _signed_copy(model, directory):
    copy = copy_model(model, directory)
    write_sidecar(copy, sha256=hashlib.sha256(copy.read_bytes()).hexdigest(), size_bytes=copy.stat().st_size)
    return copy


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_matching_manifest_loads_and_is_hashed_once(tiny_onnx, tmp_path, monkeypatch):
    model = _signed_copy(tiny_onnx, tmp_path)
    calls = []
    real = pocketgan.manifest.sha256_file

    def counting(path, *args):
        calls.append(path)
        return real(path, *args)

    monkeypatch.setattr(pocketgan.manifest, "sha256_file", counting)
    monkeypatch.setattr(pocketgan.runtime.session, "sha256_file", counting)
    session = runtime.load(model)
    assert session.sha256 == hashlib.sha256(model.read_bytes()).hexdigest()  # the provenance label's hash
    assert len(calls) == 1


def test_a_changed_artifact_is_refused_before_it_is_parsed(tiny_onnx, tmp_path):
    model = _signed_copy(tiny_onnx, tmp_path)
    _flip_last_byte(model)
    with pytest.raises(IntegrityError, match=r"sha256 \w{12}\.\.\. where its manifest says"):
        runtime.load(model)
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=r"bytes where its manifest says"):
        runtime.load(model)


def test_verify_false_skips_the_check_for_callers_that_made_it(tiny_onnx, tmp_path):
    model = copy_model(tiny_onnx, tmp_path)
    write_sidecar(model, sha256="0" * 64, size_bytes=model.stat().st_size)
    with pytest.raises(IntegrityError):
        runtime.load(model)
    assert runtime.load(model, verify=False).size is not None


def test_run_refuses_a_changed_artifact_with_exit_2(tiny_onnx, tmp_path, capsys):
    model = _signed_copy(tiny_onnx, tmp_path)
    _flip_last_byte(model)
    from PIL import Image

    Image.fromarray(np.full((20, 20, 3), 128, np.uint8)).save(tmp_path / "photo.png")
    with pytest.raises(SystemExit) as info:
        main(["run", str(model), str(tmp_path / "photo.png"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "sha256" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_manifest_without_checksums_is_not_checked(tiny_onnx, tmp_path):
    """Hand-written manifests (layout, range only) and embedded ones (a file cannot hold its own hash)."""
    model = copy_model(tiny_onnx, tmp_path)
    write_sidecar(model)
    assert runtime.load(model).manifest["format"] == "onnx"
