"""`pocketgan run` through pocketgan.cli.main: broken folders, EXIF orientation, provenance labels, overwrite."""

import hashlib

import numpy as np
import pytest
from PIL import Image
from runtime_testkit import copy_model, jpeg_xmp, png_xmp, upright_test_image, write_sidecar, xmp_fields

import pocketgan
from pocketgan import runtime
from pocketgan.cli import main
from pocketgan.images import load_image

IPTC = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}"
POCKETGAN = "{urn:pocketgan:xmp:1.0/}"
AI_GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
BROKEN = ("truncated.jpg", "empty.jpg", "notes.png")
CONVERTIBLE = {
    "good.png": "good.png",
    "sixteen_bit.png": "sixteen_bit.png",
    "nested/alpha.png": "nested/alpha.png",
    "gray.jpg": "gray.png",
    "rotated.jpg": "rotated.png",
}


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["run", *map(str, args)])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def test_broken_folder_processes_the_rest_and_exits_2(tiny_onnx, photo_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, tiny_onnx, photo_folder, "-o", out, "--threads", 1)
    assert code == 2
    assert "Traceback" not in stderr + stdout
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == len(BROKEN)
    for name in BROKEN:
        assert sum(name in line for line in error_lines) == 1, (name, error_lines)
        assert not (out / name).with_suffix(".png").exists()
    session = runtime.load(tiny_onnx)
    for source, written in CONVERTIBLE.items():
        result = np.asarray(Image.open(out / written))
        np.testing.assert_array_equal(result, session.run(load_image(photo_folder / source)), err_msg=source)
    assert "5 written" in stdout and "3 failed" in stdout


def test_exif_rotated_photo_comes_out_upright(tiny_onnx, photo_folder, tmp_path, capsys):
    out = tmp_path / "out"
    run_cli(capsys, tiny_onnx, photo_folder / "rotated.jpg", "-o", out)
    upright = upright_test_image()
    result = np.asarray(Image.open(out / "rotated.png")).astype(float)
    assert result.shape == upright.shape  # 40 x 24: the stored 24 x 40 pixels were turned
    session = runtime.load(tiny_onnx)
    error_upright = np.abs(result - session.run(upright)).mean()
    error_upside_down = np.abs(result - session.run(np.ascontiguousarray(upright[::-1, ::-1]))).mean()
    assert error_upright < 6 < error_upside_down


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_provenance_label_is_written_and_readable(tiny_onnx, photo_folder, tmp_path, capsys, fmt):
    out = tmp_path / "out"
    code, _, _ = run_cli(capsys, tiny_onnx, photo_folder / "good.png", "-o", out, "--format", fmt)
    assert code == 0
    data = (out / f"good.{fmt}").read_bytes()
    packet = png_xmp(data) if fmt == "png" else jpeg_xmp(data)
    assert packet is not None
    fields = xmp_fields(packet)
    assert fields[IPTC + "DigitalSourceType"] == AI_GENERATED
    assert fields[POCKETGAN + "ModelSHA256"] == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert fields[POCKETGAN + "Version"] == pocketgan.__version__
    assert Image.open(out / f"good.{fmt}").size == (96, 96)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_no_label_writes_no_xmp(tiny_onnx, photo_folder, tmp_path, capsys, fmt):
    out = tmp_path / "out"
    code, _, _ = run_cli(
        capsys, tiny_onnx, photo_folder / "good.png", "-o", out, "--format", fmt, "--no-label"
    )
    assert code == 0
    data = (out / f"good.{fmt}").read_bytes()
    assert (png_xmp(data) if fmt == "png" else jpeg_xmp(data)) is None
    assert b"trainedAlgorithmicMedia" not in data


def test_existing_outputs_are_skipped_unless_overwrite(tiny_onnx, photo_folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "good.png").write_bytes(b"keep me")
    code, stdout, stderr = run_cli(capsys, tiny_onnx, photo_folder / "good.png", "-o", out)
    assert code == 0 and "skipped" in stderr and "1 skipped" in stdout
    assert (out / "good.png").read_bytes() == b"keep me"
    code, _, _ = run_cli(capsys, tiny_onnx, photo_folder / "good.png", "-o", out, "--overwrite")
    assert code == 0 and Image.open(out / "good.png").size == (96, 96)
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_globs_and_missing_inputs(tiny_onnx, photo_folder, tmp_path, capsys):
    out = tmp_path / "out"
    pattern = str(photo_folder / "g*.*")
    code, stdout, stderr = run_cli(capsys, tiny_onnx, pattern, tmp_path / "missing.jpg", "-o", out)
    assert code == 2
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "gray.png"]
    assert "missing.jpg: no such file or folder" in stderr


def test_output_folder_inside_input_folder_is_not_reprocessed(tiny_onnx, photo_folder, capsys):
    out = photo_folder / "styled"
    run_cli(capsys, tiny_onnx, photo_folder / "good.png", "-o", out)
    code, stdout, _ = run_cli(capsys, tiny_onnx, photo_folder, "-o", out)
    assert code == 2  # the folder's three broken files
    assert not (out / "styled").exists()
    assert "4 written" in stdout and "1 skipped" in stdout


def test_bad_models_give_one_line_and_exit_2(tiny_onnx, photo_folder, tmp_path, capsys):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny_onnx.read_bytes()[:200])
    mismatched = copy_model(tiny_onnx, tmp_path, "mismatched.onnx")
    write_sidecar(mismatched, input={"shape": [1, 3, 256, 256], "layout": "NCHW"})
    misnamed = copy_model(tiny_onnx, tmp_path, "misnamed.tflite")
    unknown = copy_model(tiny_onnx, tmp_path, "model.txt")
    for model in (truncated, mismatched, misnamed, unknown, tmp_path / "absent.onnx"):
        code, stdout, stderr = run_cli(capsys, model, photo_folder / "good.png", "-o", tmp_path / "out")
        assert code == 2, model
        assert "Traceback" not in stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and model.name in lines[0], lines


def test_list_backends(capsys):
    code, stdout, _ = run_cli(capsys, "--list-backends")
    assert code == 0
    assert "onnxruntime: ok" in stdout and "coreml:" in stdout
