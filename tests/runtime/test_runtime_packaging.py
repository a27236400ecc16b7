"""The package as a user installs it: the sdist and wheel build, hold the zoo, templates and images, put only
`pocketgan` at the top of site-packages, and the runtime-only install (no extras, no torch) runs an ONNX
and a TFLite artifact with `pocketgan run` on Python 3.11 and 3.12.

Example: .venv/bin/python -m pytest tests/runtime/test_runtime_packaging.py -q
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DATA = ("pocketgan/zoo/vintage-mobile/student.pt", "pocketgan/evals/templates/report.html")


def _python(version: str) -> str | None:
    """An interpreter of `version` (PATH, then pyenv's install folder), or None when this machine has none."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True
        )
        if probe.returncode == 0 and probe.stdout.decode().strip() == str(
            tuple(map(int, version.split(".")))
        ):
            return candidate
    return None


@pytest.fixture(scope="module")
def distributions(tmp_path_factory) -> dict[str, Path]:
    """`python -m build`: the sdist, then the wheel built from that sdist (so the sdist must be complete)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return {"sdist": next(out.glob("*.tar.gz")), "wheel": next(out.glob("*.whl"))}


def test_wheel_has_only_pocketgan_at_top_and_its_data(distributions):
    names = zipfile.ZipFile(distributions["wheel"]).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"pocketgan", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for stage in ("distill", "export", "runtime", "evals"):
        assert f"pocketgan/{stage}/__init__.py" in names
    for data in PACKAGE_DATA:
        assert data in names
    assert any(name.startswith("pocketgan/data/photos/") for name in names)


def test_sdist_holds_the_source_layout(distributions):
    with tarfile.open(distributions["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for path in ("distill/trainer.py", "runtime/session.py", "pocketgan/zoo/vintage-mobile/student.pt"):
        assert path in names


def _photo(folder: Path) -> Path:
    path = folder / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("version", ["3.11", "3.12"])
def test_runtime_only_install_runs_artifacts(version, distributions, tiny_onnx, tiny_tflite, tmp_path):
    python = _python(version)
    if python is None:
        pytest.skip(f"no Python {version} interpreter on this machine")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    installed = subprocess.run(
        [*pip, str(distributions["wheel"])], capture_output=True, text=True, timeout=600
    )
    assert installed.returncode == 0, installed.stderr[-2000:]

    venv_python = str(venv / "bin" / "python")
    listing = "from importlib.metadata import files; print(sorted({f.parts[0] for f in files('pocketgan')}))"
    tops = subprocess.run(
        [venv_python, "-c", listing], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    in_site = {
        top for top in tops.stdout.split("'")[1::2] if not top.startswith("..")
    }  # ".." = bin/pocketgan
    assert {top.split("-")[0] for top in in_site} == {"pocketgan"} and len(in_site) == 2, in_site
    no_torch = subprocess.run([venv_python, "-c", "import torch"], capture_output=True, cwd=tmp_path)
    assert no_torch.returncode != 0, "the runtime-only install pulled torch"

    photo = _photo(tmp_path)
    for model in (tiny_onnx, tiny_tflite):
        out = tmp_path / f"out_{model.suffix[1:]}"
        ran = subprocess.run(
            [
                str(venv / "bin" / "pocketgan"),
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
            timeout=300,
            cwd=tmp_path,  # not the repository: the installed package, not the source tree, must answer
        )
        assert ran.returncode == 0, ran.stderr
        outputs = list(out.iterdir())
        assert len(outputs) == 1
        assert Image.open(outputs[0]).size == (56, 40)
