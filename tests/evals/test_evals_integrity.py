"""Artifacts are judged only as their manifests describe them: parity fails, bench and eval refuse or fail."""

import json
import xml.etree.ElementTree as ET

import pytest

from pocketgan.cli import main
from pocketgan.manifest import manifest_path, write_manifest


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def flip_last_byte(path):
    """Same size, other bytes: only the sha256 can tell."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def junit_case(path, name):
    (case,) = [c for c in ET.parse(path).getroot().iter("testcase") if c.get("name") == name]
    return case


def test_parity_fails_an_artifact_whose_sha256_does_not_match(artifacts_dir, tmp_path, capsys):
    flip_last_byte(artifacts_dir / "student-copy.fp32.onnx")
    junit = tmp_path / "parity.xml"
    code, out, err = run_cli(["parity", "--artifacts", str(artifacts_dir), "--junit", str(junit)], capsys)
    assert code == 1 and "student-copy.fp32.onnx" in err
    (failure,) = junit_case(junit, "student-copy.fp32.onnx").findall("failure")
    assert "sha256" in failure.get("message") and "where its manifest says" in failure.get("message")
    assert ET.parse(junit).getroot().get("failures") == "1"  # the other two still pass


def test_parity_fails_an_orphan_manifest_instead_of_skipping_it(artifacts_dir, tmp_path, capsys):
    (artifacts_dir / "student.fp16.onnx").unlink()
    junit = tmp_path / "parity.xml"
    code, out, err = run_cli(["parity", "--artifacts", str(artifacts_dir), "--junit", str(junit)], capsys)
    assert code == 1 and "student.fp16.onnx" in err
    (failure,) = junit_case(junit, "student.fp16.onnx").findall("failure")
    assert "missing" in failure.get("message")
    assert ET.parse(junit).getroot().get("skipped") == "0"


def test_parity_fails_a_manifest_without_checksums(artifacts_dir, capsys):
    sidecar = manifest_path(artifacts_dir / "student.fp32.onnx")
    manifest = json.loads(sidecar.read_text())
    del manifest["sha256"]
    sidecar.write_text(json.dumps(manifest))
    code, out, err = run_cli(["parity", "--artifacts", str(artifacts_dir)], capsys)
    assert code == 1 and "declares no sha256" in out


def test_bench_refuses_an_artifact_that_does_not_match_its_manifest(artifacts_dir, capsys):
    flip_last_byte(artifacts_dir / "student-copy.fp32.onnx")
    args = ["bench", str(artifacts_dir / "student.fp32.onnx"), str(artifacts_dir / "student-copy.fp32.onnx")]
    code, out, err = run_cli(args + ["--iterations", "2"], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "student-copy.fp32.onnx: sha256" in err and out == ""  # refused before anything was timed


def test_bench_exits_1_naming_the_models_that_could_not_load(artifacts_dir, tmp_path, capsys):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    args = [
        "bench",
        str(artifacts_dir / "student.fp32.onnx"),
        str(broken),
        "--iterations",
        "2",
        "--warmup",
        "0",
    ]
    code, out, err = run_cli(args, capsys)
    assert (
        code == 1 and err.count("\n") == 1 and "1 of 2 models could not be loaded or run: broken.onnx" in err
    )
    assert "broken.onnx: failed:" in out  # the table's note gives the reason, one line


def test_eval_refuses_an_artifact_that_does_not_match_its_manifest(artifacts_dir, tmp_path, capsys):
    flip_last_byte(artifacts_dir / "student.fp16.onnx")
    out_dir = tmp_path / "report"
    args = [
        "eval",
        "--artifacts",
        str(artifacts_dir),
        "--size",
        "32",
        "--out",
        str(out_dir),
        "--no-progress",
        "--no-video",
    ]
    code, out, err = run_cli(args, capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "student.fp16.onnx" in err
    assert not out_dir.exists()  # refused before the teacher or any artifact ran


def test_eval_exits_1_listing_artifacts_that_could_not_load(
    tmp_path, tiny_export, make_dir, make_manifest, capsys
):
    checkpoint, _ = tiny_export
    directory = make_dir(tmp_path / "dist")
    (directory / "student.fp16.onnx").unlink()  # an orphan manifest
    broken = directory / "broken.fp32.onnx"
    broken.write_bytes(b"not a protobuf")
    write_manifest(broken, make_manifest(broken, checkpoint))  # matches: the file itself is unloadable
    out_dir = tmp_path / "report"
    args = [
        "eval",
        "--artifacts",
        str(directory),
        "--size",
        "32",
        "--out",
        str(out_dir),
        "--no-progress",
        "--no-video",
    ]
    code, out, err = run_cli(
        args + ["--iterations", "2", "--warmup", "0", "--teacher-iterations", "1"], capsys
    )
    assert code == 1 and err.count("\n") == 1
    assert "2 of 4 artifacts could not be loaded or run" in err
    assert "broken.fp32.onnx" in err and "student.fp16.onnx" in err
    failed_lines = [line for line in out.splitlines() if line.startswith("failed: ")]
    assert len(failed_lines) == 2 and any("missing" in line for line in failed_lines)
    statuses = {
        row["name"]: row["status"] for row in json.loads((out_dir / "eval.json").read_text())["artifacts"]
    }
    assert statuses["student.fp32.onnx"] == "ok" and statuses["broken.fp32.onnx"].startswith("failed: ")
