import json
import subprocess
import sys
import textwrap

import pytest

from pocketgan.cli import main
from pocketgan.errors import UsageError
from pocketgan.evals.bench import BenchConfig, latency_summary, parse_sizes, spread_note

ROW_KEYS = {"model", "format", "precision", "backend", "threads", "size_bytes", "status"}
MEASURED_KEYS = {"load_ms", "first_run_ms", "latency_ms", "peak_rss_mb", "rss_before_load_mb", "note"}


def run_cli(args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def test_bench_json_has_every_key(artifacts_dir, tmp_path):
    out = tmp_path / "bench.json"
    model = artifacts_dir / "student.fp32.onnx"
    assert run_cli(["bench", str(model), "--iterations", "5", "--warmup", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["config"]["iterations"] == 5 and data["config"]["threads"] == 2
    (row,) = data["rows"]
    assert ROW_KEYS | MEASURED_KEYS <= set(row), set(ROW_KEYS | MEASURED_KEYS) - set(row)
    assert row["status"] == "ok" and row["backend"] == "onnxruntime"
    assert set(row["latency_ms"]) >= {"p50", "p90", "p99", "mean"}
    assert row["latency_ms"]["p50"] <= row["latency_ms"]["max"]
    assert row["latency_ms"]["p90"] is None and row["latency_ms"]["p99"] is None  # 5 samples: too few
    assert row["peak_rss_mb"] > 10 and row["size_bytes"] == model.stat().st_size
    assert row["torch_loaded"] is False  # the worker measures a torch-free process


def test_bench_photo_sizes_give_engine_and_end_to_end_rows(artifacts_dir, tmp_path):
    out = tmp_path / "bench.json"
    model = artifacts_dir / "student.fp32.onnx"
    args = [
        "bench",
        str(model),
        "--size",
        "96,200x120",
        "--max-side",
        "64",
        "--iterations",
        "2",
        "--warmup",
        "0",
    ]
    assert run_cli([*args, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["photo_size"], r["mode"]) for r in rows] == [
        ([96, 96], "engine"),
        ([96, 96], "end-to-end"),
        ([120, 200], "engine"),
        ([120, 200], "end-to-end"),
    ]
    assert all(r["status"] == "ok" and r["peak_rss_mb"] > 10 for r in rows)
    assert rows[3]["latency_ms"]["p50"] > rows[2]["latency_ms"]["p50"]  # decode + resize + encode cost


def test_bench_size_parsing():
    assert parse_sizes("1024, 1920x1080,4032X3024") == ((1024, 1024), (1080, 1920), (3024, 4032))
    with pytest.raises(UsageError, match="WxH"):
        parse_sizes("big")


def test_bench_reports_an_unavailable_backend_as_a_row(artifacts_dir, capsys):
    model = artifacts_dir / "student.fp32.onnx"
    assert run_cli(["bench", str(model), "--backend", "coreml", "--iterations", "2"]) == 0
    assert "unavailable:" in capsys.readouterr().out


def test_bench_missing_model_is_bad_input(tmp_path):
    assert run_cli(["bench", str(tmp_path / "nope.onnx")]) == 2


def test_latency_summary_and_spread_note():
    steady = latency_summary([10.0] * 9 + [11.0])
    assert steady["p50"] == 10.0 and spread_note(steady) is None
    noisy = latency_summary([10.0] * 5 + [20.0] * 5)
    assert "wide spread" in spread_note(noisy)


def test_bench_config_validates():
    with pytest.raises(Exception, match="iterations"):
        BenchConfig(iterations=0)


def test_bench_modules_import_without_torch(block_torch):
    code = block_torch + textwrap.dedent(
        """
        import pocketgan.evals.bench, pocketgan.evals._bench_worker, pocketgan.evals.cli, pocketgan.evals.schema
        import pocketgan.evals.common
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_report_template_loads_outside_the_repository(tmp_path):
    """The console script has no repository folder on sys.path: templates load by the installed name."""
    code = "from pocketgan.evals.report import template_environment; template_environment().get_template('report.html')"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
