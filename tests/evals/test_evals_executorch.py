"""bench and eval list ExecuTorch .pte artifacts beside the others: latency, RSS and fidelity vs the teacher."""

import json
import shutil

import pytest

from pocketgan.cli import main
from pocketgan.manifest import manifest_path

pytestmark = pytest.mark.executorch


def run_cli(args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


@pytest.fixture(scope="module")
def pte_dir(tmp_path_factory, tiny_export):
    """The tiny student's fp32 ONNX and its fp32 + int8 .pte (made by export.export) in one folder."""
    pytest.importorskip("executorch")
    from pocketgan.export import ExportConfig, export

    checkpoint, onnx_paths = tiny_export
    directory = tmp_path_factory.mktemp("pte") / "dist"
    config = ExportConfig(
        formats=("executorch",), precisions=("fp32", "int8"), size=32, out=str(directory), calibration_count=8
    )
    result = export(str(checkpoint), config)
    assert [a.status for a in result.artifacts] == ["ok", "ok"], [a.status for a in result.artifacts]
    shutil.copyfile(onnx_paths["fp32"], directory / "student.fp32.onnx")
    shutil.copyfile(manifest_path(onnx_paths["fp32"]), manifest_path(directory / "student.fp32.onnx"))
    return directory


def test_bench_lists_pte_rows_beside_onnx(pte_dir, tmp_path):
    out = tmp_path / "bench.json"
    models = [str(pte_dir / name) for name in ("student.fp32.pte", "student.int8.pte", "student.fp32.onnx")]
    assert run_cli(["bench", *models, "--iterations", "5", "--warmup", "1", "--json", str(out)]) == 0
    rows = {row["model"].rsplit("/", 1)[-1]: row for row in json.loads(out.read_text())["rows"]}
    for name in ("student.fp32.pte", "student.int8.pte"):
        row = rows[name]
        assert row["status"] == "ok" and row["backend"] == "executorch", row
        assert (row["format"], row["precision"]) == ("executorch", name.split(".")[1])
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["max"] and row["peak_rss_mb"] > 10
        assert row["torch_loaded"] is True  # the one backend that needs torch
    assert rows["student.fp32.onnx"]["torch_loaded"] is False


def test_eval_lists_pte_rows_with_fidelity(pte_dir, tmp_path):
    out = tmp_path / "report"
    args = [
        "eval",
        "--artifacts",
        str(pte_dir),
        "--size",
        "32",
        "--out",
        str(out),
        "--no-progress",
        "--no-video",
    ]
    assert run_cli(args + ["--iterations", "3", "--warmup", "1", "--teacher-iterations", "1"]) == 0
    report = json.loads((out / "eval.json").read_text())
    rows = {(r["format"], r["precision"]): r for r in report["artifacts"]}
    assert {("executorch", "fp32"), ("executorch", "int8"), ("onnx", "fp32")} <= set(rows)
    onnx = rows["onnx", "fp32"]
    for precision in ("fp32", "int8"):
        row = rows["executorch", precision]
        assert row["status"] == "ok" and row["backend"] == "executorch", row
        assert row["latency_ms"]["p50"] > 0 and row["peak_rss_mb"] > 10
        psnr = row["fidelity_vs_teacher"]["psnr_db"]
        assert abs(psnr - onnx["fidelity_vs_teacher"]["psnr_db"]) < (0.01 if precision == "fp32" else 1.0)
    assert "student.int8.pte" in (out / "report.md").read_text()
