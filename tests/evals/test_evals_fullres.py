"""`pocketgan eval --resolution N`: teacher at full size (cached), Session.run outputs, detail ratio, 1:1 crops."""

import json

import numpy as np
import pytest
from PIL import Image

from pocketgan.cli import main
from pocketgan.evals.fullres import crop_box, scaled_size
from pocketgan.metrics import detail_ratio


def run_cli(args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def test_scaled_size_keeps_aspect_never_upscales_and_rounds_to_4():
    assert scaled_size((1600, 2560), 1280) == (800, 1280)
    assert scaled_size((3391, 6028), 1280) == (720, 1280)
    assert scaled_size((300, 451), 1280) == (300, 452)


def test_detail_ratio_sees_blur():
    rng = np.random.default_rng(0)
    sharp = rng.uniform(-1, 1, (64, 64, 3)).astype(np.float32)
    blurred = (sharp + np.roll(sharp, 1, 0) + np.roll(sharp, 1, 1) + np.roll(sharp, 1, (0, 1))) / 4
    assert detail_ratio(sharp, sharp) == pytest.approx(1.0)
    assert detail_ratio(blurred, sharp) < 0.5


def test_crop_box_finds_the_detailed_window():
    image = np.zeros((300, 500, 3), np.float32)
    image[150:250, 300:400] = np.random.default_rng(1).uniform(-1, 1, (100, 100, 3))
    top, left, bottom, right = crop_box(image, 128)
    assert (bottom - top, right - left) == (128, 128)
    assert top <= 150 and bottom >= 250 - 64 and left <= 300 and right >= 400 - 64
    image[:] = np.random.default_rng(2).uniform(-1, 1, image.shape)
    image[0:128, 128:256] = 0.3  # the only flat window
    assert crop_box(image, 128, flattest=True) == (0, 128, 128, 256)


def test_full_resolution_eval_caches_the_teacher_and_writes_crops(artifacts_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETGAN_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "photos"
    data.mkdir()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (60, 100, 3), dtype=np.uint8)).save(data / "wide.png")
    Image.fromarray(rng.integers(0, 256, (52, 40, 3), dtype=np.uint8)).save(data / "tall.png")
    reports = []
    for run in ("first", "second"):
        out = tmp_path / run
        args = ["eval", "--artifacts", str(artifacts_dir), "--data", str(data), "--resolution", "80"]
        assert run_cli([*args, "--max-side", "48", "--out", str(out), "--no-progress"]) == 0
        reports.append(json.loads((out / "eval.json").read_text()))
    first, second = reports
    assert first["sizes"] == {"tall": [52, 40], "wide": [48, 80]}
    assert (first["teacher"]["cache_misses"], second["teacher"]["cache_misses"]) == (2, 0)
    assert second["teacher"]["cache_hits"] == 2
    assert first["identity_baseline_psnr_db"] == second["identity_baseline_psnr_db"]
    row = next(r for r in first["artifacts"] if r["name"] == "student.fp32.onnx")
    scores = row["fidelity_vs_teacher"]["per_image"]["wide"]
    assert {"psnr_db", "ssim", "gain_db", "grade_de2000", "texture_swd", "detail_ratio"} <= set(scores)
    assert row["fidelity_vs_teacher"]["detail_ratio"]["min"] > 0
    html = (tmp_path / "first" / "report.html").read_text()
    # input, teacher and each scored artifact
    shown = 2 + sum(1 for r in first["artifacts"] if r.get("fidelity_vs_teacher"))
    assert html.count("<img") == 2 * 2 * shown  # two photos, two windows each (most detailed, flattest)
