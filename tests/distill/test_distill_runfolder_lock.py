"""One run per folder: an OS lock refuses a second writer at once; `--resume` needs a run to resume."""

import os
import subprocess
import time

import pytest

from pocketgan.cli import main
from pocketgan.distill import distill
from pocketgan.distill.runfolder import LOCK_FILE, RunFolderLock, claim_run_folder, read_metrics
from pocketgan.errors import UsageError


def _wait_for_pid(lock_file, process, seconds=120):
    """Until `process` has written its pid into the lock file (it holds the lock from then on)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if lock_file.exists() and lock_file.read_text().strip() == str(process.pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"the first run never took the lock: {process.communicate()[1][-2000:]}")


def test_two_concurrent_runs_into_one_folder_the_second_exits_2_at_once(
    recipe, tmp_path, python, subprocess_env
):
    out_dir, gate = tmp_path / "run", tmp_path / "gate"
    command = [python, "-m", "pocketgan", "distill", "--config", str(recipe), "--out", str(out_dir)]
    env = {**subprocess_env, "TEACHER_GATE": str(gate)}
    first = subprocess.Popen(
        command + ["--teacher", "distill_nets:gated_teacher"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_pid(out_dir / LOCK_FILE, first)  # it holds the folder, its teacher waits for the gate
        started = time.monotonic()
        second = subprocess.run(
            command + ["--steps", "6"], env=env, capture_output=True, text=True, timeout=120
        )
        seconds = time.monotonic() - started
    finally:
        gate.touch()
        out, err = first.communicate(timeout=300)
    assert second.returncode == 2 and seconds < 30, (seconds, second.stderr)
    assert second.stderr.startswith("error: ") and second.stderr.count("\n") == 1
    assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr
    assert first.returncode == 0, err[-2000:]
    steps = [r["step"] for r in read_metrics(out_dir) if "final" not in r]
    assert steps == sorted(set(steps)) and steps[-1] == 8  # the first run's 8 steps only, once each
    assert "steps = 8" in (out_dir / "config.toml").read_text()


def test_the_lock_names_its_holder_and_ends_with_it(tmp_path, tiny_config):
    held = RunFolderLock(tmp_path / "run")
    with pytest.raises(UsageError, match=rf"in use by another distill run \(pid {os.getpid()}\)"):
        distill(tiny_config(steps=2))
    assert not (tmp_path / "run" / "config.toml").exists()  # refused before anything was written
    held.release()
    assert distill(tiny_config(steps=2)).steps == 2


def test_resume_in_a_folder_without_a_run_exits_2_at_once_and_creates_nothing(tmp_path, recipe, capsys):
    missing = tmp_path / "runs" / "mistyped"
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", "--config", str(recipe), "--out", str(missing), "--resume"])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and seconds < 10, seconds
    assert err.startswith("error: ") and err.count("\n") == 1 and "drop --resume" in err
    assert not missing.exists() and not missing.parent.exists()


def test_resume_in_an_existing_folder_without_last_pt_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(UsageError, match="no run to resume"):
        claim_run_folder(tmp_path / "run", resume=True)
    claim_run_folder(tmp_path / "run", resume=False).release()  # the refusal let the lock go
