"""`--json -` on every verb that produces numbers: stdout holds the JSON and nothing else; the tables,
notes and progress go to stderr. (run: tests/runtime/test_runtime_model_args.py; distill: below.)"""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from pocketgan.cli import main


def stdout_json(capsys, *args, code=0):
    """Run the CLI; stdout must parse as one JSON document (strict: no NaN/Infinity)."""
    with pytest.raises(SystemExit) as info:
        main(list(map(str, args)))
    captured = capsys.readouterr()
    assert info.value.code == code, captured.err
    strict = json.loads(captured.out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    return strict, captured.err


def test_bench_json_stdout(artifacts_dir, capsys):
    data, err = stdout_json(
        capsys,
        "bench",
        artifacts_dir / "student.fp32.onnx",
        "--iterations",
        "12",
        "--warmup",
        "0",
        "--json",
        "-",
    )
    (row,) = data["rows"]
    assert row["status"] == "ok" and row["latency_ms"]["p90"] is not None and row["latency_ms"]["p99"] is None
    assert "student.fp32.onnx" in err and "p99: not shown" in err  # the table went to stderr


def test_parity_json_stdout(artifacts_dir, capsys):
    data, err = stdout_json(capsys, "parity", "--artifacts", artifacts_dir, "--min-psnr", "45", "--json", "-")
    assert data["passed"] is True and len(data["rows"]) == 3
    assert "parity: 3 passed" in err


def test_eval_json_stdout(artifacts_dir, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 40), (200, 120, 40)).save(photos / "a.png")
    args = [
        "eval",
        "--artifacts",
        artifacts_dir,
        "--data",
        photos,
        "--size",
        "32",
        "--out",
        tmp_path / "report",
        "--no-video",
    ]
    args += [
        "--iterations",
        "2",
        "--warmup",
        "0",
        "--teacher-iterations",
        "1",
        "--no-progress",
        "--json",
        "-",
    ]
    data, err = stdout_json(capsys, *args)
    assert data == json.loads((tmp_path / "report" / "eval.json").read_text())
    assert "wrote" in err


def test_inspect_json_stdout_for_an_onnx_artifact(artifacts_dir, capsys):
    data, _ = stdout_json(capsys, "inspect", artifacts_dir / "student.fp32.onnx", "--json", "-")
    (tensor,) = data["inputs"]
    assert tensor["shape"] == [1, 32, 32, 3] and tensor["dtype"] == "float32"  # the exporter's NHWC image I/O
    assert tensor["layout"] == "NHWC" and tensor["range"] == [-1, 1] and tensor["color"] == "RGB"
    assert data["precision"] == "fp32" and data["op_kinds"] == {
        "float": sum(data["ops"].values()),
        "quantized": 0,
    }
    assert data["macs"] == 2 * 32 * 32 * 9 * 3 * 8  # two 3x3 convs, 3->8->3 channels
    assert data["parity"]["passed"] is True


def test_inspect_json_stdout_for_a_checkpoint(tiny_export, capsys):
    checkpoint, _ = tiny_export
    data, _ = stdout_json(capsys, "inspect", checkpoint, "--size", "32", "--json", "-")
    assert data["macs"] == 2 * 32 * 32 * 9 * 3 * 8 and data["params"] > 0


def test_export_json_stdout(tiny_export, tmp_path, capsys):
    checkpoint, _ = tiny_export
    args = ["export", checkpoint, "--format", "onnx", "--precision", "fp32", "--size", "32"]
    data, err = stdout_json(capsys, *args, "--out", tmp_path / "dist", "--json", "-")
    (artifact,) = data["artifacts"]
    assert artifact["status"] == "ok" and artifact["parity"]["passed"] is True
    assert "1 artifacts in" in err
    manifest = json.loads((tmp_path / "dist" / "student.fp32.onnx.manifest.json").read_text())
    assert (
        manifest["source"]["macs"] == 2 * 32 * 32 * 9 * 3 * 8
        and "FlopCounterMode" in manifest["source"]["mac_method"]
    )


def test_a_checkpoint_as_artifacts_folder_is_exported_into_the_cache(
    tiny_export, tmp_path, capsys, monkeypatch
):
    checkpoint, _ = tiny_export
    monkeypatch.setenv("POCKETGAN_CACHE", str(tmp_path / "cache"))
    data, err = stdout_json(capsys, "parity", "--artifacts", checkpoint, "--min-psnr", "45", "--json", "-")
    assert data["passed"] is True and [row["name"] for row in data["rows"]] == ["student.fp32.onnx"]
    assert "note:" in err


def test_distill_json_stdout(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    args = ["distill", "--preset", "quick", "--steps", "2", "--size", "32", "--batch", "2", "--width", "8"]
    args += ["--eval-every", "2", "--checkpoint-every", "2", "--out", tmp_path / "run", "--no-progress"]
    data, err = stdout_json(capsys, *args, "--cache-dir", tmp_path / "cache", "--json", "-")
    assert data["steps"] == 2 and data["best_checkpoint"]
    assert "distilled 2 steps" in err  # the summary goes to stderr, the JSON alone to stdout
    shutil.rmtree(tmp_path / "run")
