"""Tiny seeded artifacts for the evals tests: a 2-conv student, its checkpoint, its ONNX exports (export.export)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pocketgan.checkpoint import save_checkpoint
from pocketgan.manifest import library_versions, manifest_path, now_iso, sha256_file, size_bytes
from pocketgan.models import available, register_model

TINY_STUDENT = "evals-tiny"
SIZE = 32


class TinyStudent(nn.Module):
    """x -> tanh(x + conv(relu(conv(x)))): a residual 3->8->3 net, ~450 parameters."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.inner = nn.Conv2d(3, width, 3, padding=1)
        self.outer = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x):
        return torch.tanh(x + 0.5 * self.outer(torch.relu(self.inner(x))))  # (N, 3, H, W)


if TINY_STUDENT not in available():
    register_model(TINY_STUDENT, kind="student")(TinyStudent)


def tiny_manifest(artifact, checkpoint, precision="fp32", kind="student") -> dict:
    """A hand-written manifest, for artifacts the exporter cannot make here (a stub .mlpackage)."""
    tensor = {
        "shape": [1, 3, SIZE, SIZE],
        "layout": "NCHW",
        "dtype": "float32",
        "range": [-1, 1],
        "color": "RGB",
    }
    return {
        "name": "student",
        "format": "onnx",
        "precision": precision,
        "sha256": sha256_file(artifact),
        "size_bytes": size_bytes(artifact),
        "input": {"name": "x", **tensor},
        "output": {"name": "y", **tensor},
        "source": {
            "kind": kind,
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": sha256_file(checkpoint),
            "student": TINY_STUDENT,
            "student_kwargs": {"width": 8},
            "config": {},
        },
        "parity": {
            "reference": "student",
            "images": ["astronaut", "grace_hopper"],
            "psnr_db": None,
            "max_abs": None,
            "passed": True,
            "verified_by": "unverified: test fixture",
        },
        "versions": library_versions(["torch", "onnx"]),
        "created": now_iso(),
    }


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """A checkpoint of the tiny student and its fp32 + fp16 ONNX artifacts, made once by `export.export`."""
    from pocketgan.export import ExportConfig, export

    root = tmp_path_factory.mktemp("evals_tiny")
    torch.manual_seed(0)
    model = TinyStudent().eval()
    checkpoint = root / "best.pt"
    save_checkpoint(
        checkpoint,
        {
            "student": TINY_STUDENT,
            "student_kwargs": {"width": 8},
            "state_dict": model.state_dict(),
            "config": {},
        },
    )
    config = ExportConfig(formats=("onnx",), precisions=("fp32", "fp16"), size=SIZE, out=str(root / "dist"))
    result = export(str(checkpoint), config)
    paths = {a.precision: Path(a.path) for a in result.artifacts if a.status == "ok"}
    assert set(paths) == {"fp32", "fp16"}, [(a.path, a.status) for a in result.artifacts]
    return checkpoint, paths


def _add_artifact(directory, source, name):
    """Copy an exported artifact and its manifest under a new name (the manifest is kept as exported)."""
    artifact = directory / name
    shutil.copyfile(source, artifact)
    shutil.copyfile(manifest_path(source), manifest_path(artifact))
    return artifact


def perturb_onnx(path, scale: float = 0.5, seed: int = 1) -> None:
    """Add noise to the float weight tensors (ndim >= 2) of an ONNX file in place.

    The manifest's sha256 and size_bytes follow the new bytes (as if a broken exporter had written them), its
    parity entry still claims a clean export: only running the artifact can tell. 1-D initializers are left
    alone: some are shapes or Resize scales, not weights.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    rng = np.random.default_rng(seed)
    for i, init in enumerate(model.graph.initializer):
        weights = numpy_helper.to_array(init)
        if weights.dtype == np.float32 and weights.ndim >= 2:
            noisy = weights + rng.normal(0.0, scale, weights.shape).astype(np.float32)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(noisy, init.name))
    onnx.save(model, str(path))
    manifest = json.loads(manifest_path(path).read_text())
    manifest.update(sha256=sha256_file(path), size_bytes=size_bytes(path))
    manifest_path(path).write_text(json.dumps(manifest))


@pytest.fixture(scope="session")
def make_manifest():
    """tiny_manifest(artifact, checkpoint, precision="fp32", kind="student") -> manifest dict."""
    return tiny_manifest


@pytest.fixture
def perturb():
    """perturb_onnx(path, scale=0.5, seed=1): noise into an ONNX file's float initializers."""
    return perturb_onnx


def make_artifacts_dir(directory, tiny_export):
    """Healthy artifacts of the tiny student in `directory`: fp32 ONNX twice, fp16 ONNX once."""
    _, paths = tiny_export
    directory.mkdir(parents=True)
    _add_artifact(directory, paths["fp32"], "student.fp32.onnx")
    _add_artifact(directory, paths["fp32"], "student-copy.fp32.onnx")
    _add_artifact(directory, paths["fp16"], "student.fp16.onnx")
    return directory


@pytest.fixture(scope="session")
def make_dir(tiny_export):
    """make_dir(directory) -> `directory` holding two healthy fp32 ONNX artifacts of the tiny student."""
    return lambda directory: make_artifacts_dir(directory, tiny_export)


@pytest.fixture
def artifacts_dir(tmp_path, tiny_export):
    """A dist/ folder with two healthy fp32 ONNX artifacts of the tiny student."""
    return make_artifacts_dir(tmp_path / "dist", tiny_export)
