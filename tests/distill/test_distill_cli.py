"""`pocketgan distill` on the command line: help, a tiny run, resume, refusals as one line and exit 2."""

import json

import pytest

from pocketgan.cli import main
from pocketgan.distill.runfolder import read_metrics


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", *args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_help_shows_the_contract_flags_and_an_example(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for flag in (
        "--teacher",
        "--teacher-weights",
        "--data",
        "--student",
        "--width",
        "--size",
        "--steps",
        "--checkpoint-every",
        "--out",
        "--resume",
        "--device",
        "--config",
        "--preset",
    ):
        assert flag in out
    assert "pocketgan distill --preset quick" in out


def test_cli_runs_then_resumes_to_more_steps_with_flags_over_the_recipe(recipe, tmp_path, capsys):
    out_dir = tmp_path / "run"
    summary = tmp_path / "summary.json"
    code, out, err = run_cli(["--config", str(recipe), "--out", str(out_dir), "--json", str(summary)], capsys)
    assert code == 0, err
    assert "best student" in out and json.loads(summary.read_text())["steps"] == 8
    saved = (out_dir / "config.toml").read_text()
    assert "steps = 8" in saved and f'out = "{out_dir}"' in saved
    code, out, err = run_cli(["--out", str(out_dir), "--resume", "--steps", "12"], capsys)
    assert code == 0, err
    assert read_metrics(out_dir)[-1]["step"] == 12
    assert "steps = 12" in (out_dir / "config.toml").read_text()


def test_resume_from_a_code_running_checkpoint_is_one_line_and_exit_2(
    recipe, tmp_path, capsys, malicious_checkpoint
):
    out_dir = tmp_path / "run"
    marker = malicious_checkpoint(out_dir / "last.pt")
    code, out, err = run_cli(["--config", str(recipe), "--out", str(out_dir), "--resume"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error:") and "refused" in err
    assert not marker.exists()


def test_bad_flags_are_one_line_usage_errors(recipe, tmp_path, capsys):
    code, _, err = run_cli(["--config", str(recipe), "--out", str(tmp_path / "r"), "--steps", "0"], capsys)
    assert code == 2 and err.count("\n") == 1 and "steps" in err
    code, _, err = run_cli(["--config", str(tmp_path / "absent.toml")], capsys)
    assert code == 2 and "no such config file" in err
    code, _, err = run_cli(
        ["--config", str(recipe), "--out", str(tmp_path / "r2"), "--teacher", "nope"], capsys
    )
    assert code == 2 and err.count("\n") == 1


def test_cuda_without_a_gpu_is_a_usage_error(recipe, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run_cli(
        ["--config", str(recipe), "--out", str(tmp_path / "r"), "--device", "cuda"], capsys
    )
    assert code == 2 and err.count("\n") == 1 and "CUDA is not available" in err
