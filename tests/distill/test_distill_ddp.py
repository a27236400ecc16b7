"""`torchrun --nproc_per_node=2 ... pocketgan distill` on CPU (gloo): it trains, and rank 0 alone writes."""

import subprocess
from pathlib import Path

import pytest

from pocketgan.distill.runfolder import read_metrics


@pytest.mark.ddp
def test_two_process_ddp_on_cpu_runs_and_only_rank_0_writes(recipe, tmp_path, python, subprocess_env):
    out_dir, writes = tmp_path / "ddp", tmp_path / "writes"
    writes.mkdir()
    driver = Path(__file__).with_name("distill_ddp_driver.py")
    env = {**subprocess_env, "WRITES_DIR": str(writes)}
    command = [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(driver),
        "distill",
        "--config",
        str(recipe),
        "--out",
        str(out_dir),
        "--device",
        "cpu",
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "best student" in completed.stdout
    records = read_metrics(out_dir)
    steps = [r["step"] for r in records if "final" not in r]
    assert steps == sorted(set(steps)) and records[-1]["step"] == 8  # one writer: no duplicated lines
    rank0 = (writes / "rank0.txt").read_text().split()
    rank1 = (writes / "rank1.txt").read_text().split() if (writes / "rank1.txt").exists() else []
    assert any(p.endswith("best.pt") for p in rank0) and any(p.endswith("last.pt") for p in rank0)
    assert not [p for p in rank1 if p.startswith(str(out_dir.resolve()))]
