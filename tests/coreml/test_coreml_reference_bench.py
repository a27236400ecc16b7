"""The bench worker times a Core ML artifact in a process without torch (coremltools would import it)."""

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
