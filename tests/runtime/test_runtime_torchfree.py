"""The runtime and `pocketgan run` work with torch unimportable, as on a device rig or a CI box without it."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image
from runtime_testkit import REPO

pytestmark = pytest.mark.tflite  # runs a .tflite too


def _image_file(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 50, 3), dtype=np.uint8)).save(path)
    return path


def test_runtime_api_without_torch(tiny_onnx, tiny_tflite, tmp_path, block_torch):
    photo = _image_file(tmp_path)
    code = block_torch + textwrap.dedent(
        f"""
        import pocketgan.errors, pocketgan.images, pocketgan.manifest
        from pocketgan import runtime
        from pocketgan.runtime.provenance import ProvenanceLabel, write_image

        image = pocketgan.images.load_image({str(photo)!r})
        for model in ({str(tiny_onnx)!r}, {str(tiny_tflite)!r}):
            session = runtime.load(model, threads=1)
            output = session.run(image)
            assert output.shape == image.shape, output.shape
        write_image(output, {str(tmp_path / "labelled.jpg")!r}, ProvenanceLabel(session.sha256))
        print(sorted(runtime.available_backends()))
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_pocketgan_run_without_torch(tiny_onnx, tiny_tflite, tmp_path, block_torch):
    """The real entry point (`python -m pocketgan run`), with torch blocked by a sitecustomize."""
    photo = _image_file(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(block_torch)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    for model in (tiny_onnx, tiny_tflite):
        out = tmp_path / f"out_{model.suffix[1:]}"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pocketgan",
                "run",
                str(model),
                str(photo),
                "-o",
                str(out),
                "--threads",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert Image.open(out / "photo.png").size == (50, 70)
    check = subprocess.run(
        [sys.executable, "-c", "import torch"], capture_output=True, text=True, timeout=60, cwd=REPO, env=env
    )
    assert check.returncode != 0 and "torch is blocked" in check.stderr  # the blocker really was active
