"""The "executorch" backend: .pte programs behind the same Session API, and its reasons when it cannot run."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from runtime_testkit import MODEL_SIZE, tiny_net

INSTALL = 'pip install "pocketgan[executorch]"'


def _run(code: str, tmp_path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def tiny_pte(tmp_path_factory):
    """The runtime's tiny net lowered to XNNPACK (NHWC float I/O, as the exporter writes it)."""
    pytest.importorskip("executorch")
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from pocketgan.export.prepare import ChannelsLast

    model = ChannelsLast(tiny_net()).eval()
    program = torch.export.export(model, (torch.zeros(1, MODEL_SIZE, MODEL_SIZE, 3),))
    path = tmp_path_factory.mktemp("executorch") / "tiny.fp32.pte"
    path.write_bytes(
        to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    )
    return path, model


def test_unavailable_without_executorch_says_why_and_how_to_install(tmp_path, block_imports):
    (tmp_path / "model.pte").write_bytes(b"\0\0\0\0ET12" + bytes(64))
    code = block_imports("executorch") + textwrap.dedent(
        """
        from pocketgan import runtime
        from pocketgan.errors import BackendUnavailable
        print(runtime.available_backends()["executorch"])
        try:
            runtime.load("model.pte")
        except BackendUnavailable as exc:
            print(exc)
        """
    )
    status, error = _run(code, tmp_path).strip().splitlines()
    assert status == f"unavailable: needs executorch (ExecuTorch's Python runtime links libtorch): {INSTALL}"
    assert error == f"no backend can run .pte here (executorch: {status})"


def test_unavailable_without_torch_and_torch_stays_unimported(tmp_path, block_torch):
    code = block_torch + textwrap.dedent(
        """
        from pocketgan import runtime
        print(runtime.available_backends()["executorch"])
        assert "torch" not in sys.modules and "executorch" not in sys.modules
        """
    )
    status = _run(code, tmp_path).strip()
    assert status.startswith("unavailable: needs torch") and status.endswith(INSTALL)


def test_session_on_a_pte_matches_torch(tiny_pte):
    import torch

    from pocketgan import runtime

    path, model = tiny_pte
    with runtime.load(path, threads=1) as session:
        assert session.backend == "executorch" and session.layout == "NHWC"
        assert session.size == (MODEL_SIZE, MODEL_SIZE)
        assert session.verified_by.startswith("executorch ")
        x = np.random.default_rng(0).uniform(-1, 1, (2, 3, MODEL_SIZE, MODEL_SIZE)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x.transpose(0, 2, 3, 1).copy())).numpy().transpose(0, 3, 1, 2)
        assert np.abs(session.predict(x) - expected).max() < 1e-4
        photo = np.random.default_rng(1).integers(0, 256, (70, 50, 3), dtype=np.uint8)
        assert session.run(photo).shape == (70, 50, 3)


def test_a_file_that_is_not_a_program_is_one_line(tmp_path):
    pytest.importorskip("executorch")
    from pocketgan import runtime
    from pocketgan.errors import ModelLoadError

    fake = tmp_path / "fake.pte"
    fake.write_bytes(b"this is not a program at all")
    with pytest.raises(ModelLoadError, match="not an ExecuTorch program"):
        runtime.load(fake)
