import errno
import os
import subprocess
import sys

import pytest

from pocketgan.errors import IntegrityError, ModelLoadError
from pocketgan.manifest import (
    atomic_path,
    atomic_write_bytes,
    manifest_path,
    read_manifest,
    remove_stale_temps,
    sha256_file,
    size_bytes,
    validate_manifest,
    verify_artifact,
    write_manifest,
)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_directories(tmp_path):
    target = tmp_path / "m.mlpackage"
    for payload in (b"one", b"two"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights.bin").write_bytes(payload)
    assert (target / "weights.bin").read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mlpackage"]
    assert len(sha256_file(target)) == 64


def test_manifest_roundtrip_and_validation(tmp_path):
    tensor = {"shape": [1, 3, 8, 8], "layout": "NCHW", "dtype": "float32", "range": [-1, 1], "color": "RGB"}
    manifest = {
        "format": "onnx",
        "precision": "fp32",
        "sha256": "0" * 64,
        "size_bytes": 1,
        "input": tensor,
        "output": tensor,
        "source": {},
        "parity": {
            "reference": "torch",
            "images": [],
            "psnr_db": None,
            "max_abs": None,
            "passed": None,
            "verified_by": "unverified: test",
        },
        "versions": {},
        "created": "now",
    }
    artifact = tmp_path / "a.onnx"
    write_manifest(artifact, manifest)
    assert manifest_path(artifact).name == "a.onnx.manifest.json"
    assert read_manifest(artifact) == manifest
    del manifest["parity"]["verified_by"]
    with pytest.raises(ModelLoadError, match="parity.verified_by"):
        validate_manifest(manifest)
    manifest_path(artifact).write_text("{not json")
    with pytest.raises(ModelLoadError, match="not a valid manifest"):
        read_manifest(artifact)


def _write_package(directory):
    (directory / "Data" / "com.apple.CoreML" / "weights").mkdir(parents=True)
    (directory / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(b"spec")
    (directory / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").write_bytes(b"\0" * 64)
    (directory / "Manifest.json").write_text("{}")


def test_an_mlpackage_is_checked_as_the_tree_export_hashed(tmp_path):
    """Export hashes the package under its temporary name; the renamed package must verify, and any change
    inside it (an edited, added or renamed file) must not."""
    package = tmp_path / "student.fp16.mlpackage"
    with atomic_path(package) as tmp:
        tmp.mkdir()
        _write_package(tmp)
        manifest = {"sha256": sha256_file(tmp), "size_bytes": size_bytes(tmp)}
    assert verify_artifact(package, manifest) == manifest["sha256"]
    weights = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weights.write_bytes(b"\1" + b"\0" * 63)
    with pytest.raises(IntegrityError, match="sha256"):
        verify_artifact(package, manifest)
    weights.write_bytes(b"\0" * 64)
    weights.rename(weights.with_name("weight2.bin"))
    with pytest.raises(IntegrityError, match="sha256"):
        verify_artifact(package, manifest)
    weights.with_name("weight2.bin").rename(weights)
    (package / "extra.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="65 bytes|bytes where"):
        verify_artifact(package, manifest)


def test_verify_artifact_needs_checksums_only_when_asked(tmp_path):
    artifact = tmp_path / "a.onnx"
    artifact.write_bytes(b"model")
    assert verify_artifact(artifact, {"format": "onnx"}) is None
    with pytest.raises(IntegrityError, match="declares no sha256"):
        verify_artifact(artifact, {"format": "onnx"}, required=True)
    with pytest.raises(IntegrityError, match="missing"):
        verify_artifact(tmp_path / "gone.onnx", {"sha256": "0" * 64, "size_bytes": 5})


def test_exclusive_atomic_write_never_replaces(tmp_path):
    target = tmp_path / "out.png"
    atomic_write_bytes(target, b"first", replace=False)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"second", replace=False)
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # the temporary entry is gone


def test_exclusive_write_without_hard_links(tmp_path, monkeypatch):
    def no_links(source, target):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "out.png"
    atomic_write_bytes(target, b"first", replace=False)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"second", replace=False)
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_remove_stale_temps_removes_dead_writers_entries_only(tmp_path, killed_mid_write):
    killed_mid_write(tmp_path / "model.onnx")
    (stale,) = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".tmp-{alive.pid}-other.onnx-abc"
        live.mkdir()
        mine = tmp_path / f".tmp-{os.getpid()}-mine.onnx-abc"
        mine.mkdir()
        (tmp_path / ".tmp-without-pid").mkdir()
        assert remove_stale_temps(tmp_path) == [stale]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [live.name, mine.name, ".tmp-without-pid"]
        )
    finally:
        alive.kill()
        alive.wait()
