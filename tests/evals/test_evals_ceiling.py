"""evals.ceiling: the mirrored-teacher and affine-oracle references, on toy teachers with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from pocketgan.evals.ceiling import affine_oracle, ceiling, main, mirrored

MATRIX = np.array([[0.8, 0.1, 0.0], [0.05, 0.7, 0.1], [0.0, 0.2, 0.6]], np.float32)
SHIFT = np.array([0.05, -0.1, 0.02], np.float32)


def _images(count: int = 3, size: int = 24) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(-0.9, 0.9, (size, size, 3)).astype(np.float32) for _ in range(count)]


def _graded(x: np.ndarray) -> np.ndarray:
    """A per-pixel affine grade: mirror-symmetric, and exactly what the oracle can fit."""
    return np.clip(x @ MATRIX + SHIFT, -1, 1)


def _lopsided(x: np.ndarray) -> np.ndarray:
    """A grade whose strength depends on how bright the image's left half is: not mirror-symmetric."""
    left = x[:, : x.shape[1] // 2].mean()
    return np.clip(x * (0.5 + left) + 0.3 * left, -1, 1)


def test_affine_oracle_recovers_an_affine_grade():
    x = _images(1)[0]
    assert np.abs(affine_oracle(x, _graded(x)) - _graded(x)).max() < 1e-5


def test_mirrored_is_the_model_for_a_per_pixel_model_and_not_for_a_lopsided_one():
    x = _images(1)[0]
    np.testing.assert_allclose(mirrored(_graded, x), _graded(x), atol=1e-6)
    assert np.abs(mirrored(_lopsided, x) - _lopsided(x)).max() > 1e-3


def test_ceiling_scores_each_reference_against_the_teacher():
    images = _images()
    names = ["a", "b", "c"]
    graded = ceiling(_graded, images, names, student=lambda x: x)
    assert graded["mirrored"]["psnr_db"] == math.inf  # a per-pixel teacher is its own mirror
    assert graded["affine_oracle"]["psnr_db"] > 80
    assert graded["student"]["gain_db"] == pytest.approx(0.0)  # the "student" does nothing
    assert graded["student"]["below_baseline"] == 0
    lopsided = ceiling(_lopsided, images, names)
    assert math.isfinite(lopsided["mirrored"]["psnr_db"])
    assert set(lopsided["per_image"]) == set(names)
    assert "student" not in lopsided


def test_command_line_writes_json_and_rejects_a_folder_without_images(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for name in ("one", "two"):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(photos / f"{name}.png")
    out = tmp_path / "ceiling.json"
    assert main(["--data", str(photos), "--size", "32", "--threads", "1", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["images"] == 2 and set(summary["per_image"]) == {"one", "two"}
    assert {"mirrored", "affine_oracle"} <= set(summary) and summary["black_and_white"] is False
    grey_out = tmp_path / "grey.json"
    assert (
        main(
            [
                "--data",
                str(photos),
                "--size",
                "32",
                "--threads",
                "1",
                "--black-and-white",
                "--json",
                str(grey_out),
            ]
        )
        == 0
    )
    grey = json.loads(grey_out.read_text())  # the photos made black and white, the teacher run on those
    assert grey["black_and_white"] is True and grey["identity_psnr_db"] != summary["identity_psnr_db"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--data", str(empty), "--size", "32"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "\n" not in error


def test_carried_up_is_exact_for_a_uniform_shift_and_scores_at_full_size():
    from pocketgan.evals.ceiling import carried_up, full_size_ceiling
    from pocketgan.images import to_float

    rng = np.random.default_rng(0)
    images = [rng.integers(40, 200, (48, 64, 3), dtype=np.uint8) for _ in range(2)]

    def shift(x):
        return np.clip(x + 0.1, -1, 1)

    for image in images:  # a uniform change survives any resampling
        np.testing.assert_allclose(carried_up(shift, image, 16), shift(to_float(image)), atol=1e-5)
    targets = [_lopsided(to_float(image)) for image in images]
    summary = full_size_ceiling(_lopsided, images, ["a", "b"], targets, student=lambda image: to_float(image))
    assert {"affine_oracle", "teacher_at_256", "teacher_at_512", "student"} <= set(summary)
    assert summary["student"]["gain_db"] == pytest.approx(0.0, abs=1e-9)  # the student here does nothing
    assert summary["affine_oracle"]["gain_db"] > 0
