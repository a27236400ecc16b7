"""What the CLI shows: one-line usage errors, help that names only files the repository has, quiet logging,
JSON on stdout, presets that give way to --size, and bench percentiles its sample count supports."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pocketgan import console
from pocketgan.cli import VERBS, cli, main

REPO = Path(__file__).resolve().parents[2]


def run_main(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


@pytest.mark.parametrize(
    "args",
    [
        ("run",),
        ("bogus-verb",),
        ("bench", "--iterations", "many", "x.onnx"),
        ("export", "--no-such-flag", "x"),
    ],
    ids=["missing-argument", "unknown-verb", "bad-value", "unknown-option"],
)
def test_usage_errors_are_one_error_line_with_a_help_hint(capsys, args):
    code, out, err = run_main(capsys, *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--help'" in lines[0], err


@pytest.mark.parametrize("verb", list(VERBS))
def test_help_names_only_documents_the_repository_has(verb):
    """Documents (README.md, docs/..., ARCHITECTURE.md) named in --help exist in the repository; output
    file names such as report.md are not documents."""
    command = cli.get_command(None, verb)
    text = command.get_help(click.Context(command, info_name=verb))
    for document in re.findall(r"(?:docs/[\w./-]+|\b[A-Z][A-Z_]+)\.md\b", text):
        assert (REPO / document).exists(), f"{verb} --help refers to {document}, not in the repository"


def test_other_libraries_warnings_are_hidden_ours_shown_and_verbose_shows_all(capsys, tmp_path):
    log_file = tmp_path / "third-party.log"
    console.configure(verbose=False, log_file=str(log_file))
    logging.getLogger("somelib.module").warning("noise from a library")
    logging.warning("noise on the root logger")  # litert-torch logs "converted in training mode" this way
    logging.getLogger("pocketgan.stage").warning("our own warning")
    err = capsys.readouterr().err
    assert "noise" not in err and "our own warning" in err
    assert "noise from a library" in log_file.read_text()
    console.configure(verbose=True)
    logging.getLogger("somelib.other").warning("shown with -v")
    assert "shown with -v" in capsys.readouterr().err
    console.configure(verbose=False)


def test_python_warnings_are_hidden_without_verbose(tmp_path):
    """A DeprecationWarning-style warning raised during a verb reaches neither stdout nor stderr."""
    code = (
        "import sys, warnings\n"
        "from pocketgan import console\n"
        "console.configure(verbose=False, native=True)\n"
        "warnings.warn('old api', FutureWarning)\n"
        "import os; os.write(2, b'native line from C code\\n')\n"
        "print('note: ours', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == ["note: ours"], done.stderr


def test_emit_json_to_stdout_is_strict_json_and_file_is_written(capsys, tmp_path):
    console.emit_json("-", {"psnr_db": float("inf"), "rows": [1.5, float("nan")]})
    out = capsys.readouterr().out
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}")) == {
        "psnr_db": "inf",
        "rows": [1.5, "nan"],
    }
    target = tmp_path / "sub" / "x.json"
    console.emit_json(str(target), {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1} and capsys.readouterr().out == ""


def test_size_flag_wins_over_a_recipe_size_schedule_and_says_so(caplog, tmp_path):
    from pocketgan.distill.config import resolve_config

    recipe = tmp_path / "phases.toml"
    recipe.write_text("size = 256\nsize_schedule = [[128, 0.25, 8], [256, 0.25, 4]]\n")
    assert resolve_config(recipe).size_schedule, "the recipe has phases"
    with caplog.at_level(logging.WARNING, logger="pocketgan"):
        config = resolve_config(recipe, size=64)
    assert config.size == 64 and config.size_schedule == ()
    assert {size for _, size, _ in config.phases()} == {64}
    assert "--size 64 wins over the recipe's size schedule (128/256 px phases)" in caplog.text
    assert resolve_config(recipe, size_schedule=[[32, 0.5]], size=64).size_schedule == ((32, 0.5),)


def test_bench_percentiles_need_enough_samples():
    from pocketgan.evals.bench import BenchConfig, format_table, latency_summary, min_samples

    assert (min_samples(50), min_samples(90), min_samples(99)) == (2, 10, 100)
    assert BenchConfig().iterations >= min_samples(99)
    few = latency_summary([10.0 + i for i in range(20)])
    assert few["p90"] is not None and few["p99"] is None
    assert latency_summary([10.0] * 100)["p99"] == 10.0
    row = {"model": "m.onnx", "backend": "onnxruntime", "threads": 2, "size_bytes": 1, "load_ms": 1.0}
    table = format_table([row | {"first_run_ms": 1.0, "latency_ms": few, "peak_rss_mb": 9.0, "status": "ok"}])
    assert "p99: not shown, needs at least 100 iterations" in table
