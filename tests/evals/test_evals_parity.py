import xml.etree.ElementTree as ET

import pytest

from pocketgan import runtime
from pocketgan.cli import main
from pocketgan.errors import BackendUnavailable


def run_cli(args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def junit_cases(path):
    root = ET.parse(path).getroot()
    return {case.get("name"): case for case in root.iter("testcase")}


@pytest.mark.parametrize("threshold", [["--min-psnr", "45"], []], ids=["min-psnr", "precision-table"])
def test_parity_passes_healthy_artifacts(artifacts_dir, tmp_path, threshold):
    junit = tmp_path / "parity.xml"
    assert run_cli(["parity", "--artifacts", str(artifacts_dir), "--junit", str(junit), *threshold]) == 0
    cases = junit_cases(junit)
    assert set(cases) == {"student.fp32.onnx", "student-copy.fp32.onnx", "student.fp16.onnx"}
    assert all(len(case) == 1 and case[0].tag == "system-out" for case in cases.values())


@pytest.mark.parametrize("threshold", [["--min-psnr", "45"], []], ids=["min-psnr", "precision-table"])
def test_parity_fails_a_perturbed_artifact_and_names_it(artifacts_dir, tmp_path, threshold, perturb, capsys):
    perturb(artifacts_dir / "student-copy.fp32.onnx")  # its manifest still claims a clean parity
    junit = tmp_path / "parity.xml"
    assert run_cli(["parity", "--artifacts", str(artifacts_dir), "--junit", str(junit), *threshold]) == 1
    assert "student-copy.fp32.onnx" in capsys.readouterr().err
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "3" and root.get("failures") == "1"
    cases = junit_cases(junit)
    (failure,) = cases["student-copy.fp32.onnx"].findall("failure")
    assert "student-copy.fp32.onnx" in failure.get("message") and "dB" in failure.get("message")
    assert not cases["student.fp32.onnx"].findall("failure")


def test_parity_skips_unavailable_backends_with_the_reason(artifacts_dir, tmp_path, monkeypatch):
    def load(path, *args, **kwargs):
        raise BackendUnavailable("backend 'onnxruntime' is unavailable: pip install onnxruntime")

    monkeypatch.setattr(runtime, "load", load)
    junit = tmp_path / "parity.xml"
    assert (
        run_cli(["parity", "--artifacts", str(artifacts_dir), "--min-psnr", "40", "--junit", str(junit)]) == 0
    )
    for case in junit_cases(junit).values():
        (skipped,) = case.findall("skipped")
        assert "pip install onnxruntime" in skipped.get("message")


def test_parity_bad_input_exits_2(tmp_path, artifacts_dir):
    assert run_cli(["parity", "--artifacts", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert run_cli(["parity", "--artifacts", str(tmp_path / "empty")]) == 2
    assert run_cli(["parity", "--artifacts", str(artifacts_dir), "--reference", "teacher"]) == 2


def test_parity_against_the_teacher_uses_the_psnr_floor(artifacts_dir, tmp_path):
    junit = tmp_path / "parity.xml"
    args = ["parity", "--artifacts", str(artifacts_dir), "--reference", "teacher", "--junit", str(junit)]
    assert run_cli(args + ["--min-psnr", "30"]) == 1  # a random tiny student is far from the teacher
    (failure,) = junit_cases(junit)["student.fp32.onnx"].findall("failure")
    assert "vs teacher" in failure.get("message") and "psnr_db >= 30" in failure.get("message")
    assert run_cli(args + ["--min-psnr", "5"]) == 0
