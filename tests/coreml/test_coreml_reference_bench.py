"""The coreml-reference backend in benchmarks and video: a torch-free process, and no video rows."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_worker_runs_a_core_ml_artifact_without_importing_torch(tiny_models):
    command = [sys.executable, "-m", "pocketgan.evals._bench_worker", str(tiny_models["fp32"])]
    result = subprocess.run(
        [*command, "--size", "32", "--warmup", "0", "--iterations", "2", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["status"] == "ok" and row["backend"] == "coreml-reference"
    assert row["torch_loaded"] is False
    assert len(row["times_ms"]) == 2


def test_video_section_leaves_the_numpy_reference_out_and_says_why(tiny_models, tmp_path, monkeypatch):
    import torch

    from pocketgan.evals.video import video_section

    monkeypatch.setenv("POCKETGAN_CACHE", str(tmp_path))  # teacher frames cached here, not in ~/.cache
    section, preview = video_section(torch.nn.Identity(), "identity", [tiny_models["fp32"]], 1, 32)
    (row,) = section["artifacts"]
    assert row["status"].startswith("not run: coreml-reference") and "flicker_ratio" not in row
    assert preview is None  # nothing ran
