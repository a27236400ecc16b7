import pytest

from pocketgan.errors import ModelLoadError
from pocketgan.manifest import (
    atomic_path,
    manifest_path,
    read_manifest,
    sha256_file,
    validate_manifest,
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
