"""The grade and texture metrics tell "right grade, missing grain" from "right grain, wrong grade"."""

import numpy as np
import pytest

from pocketgan.metrics import detail_energy_db, grade_error, grade_texture, texture_swd


@pytest.fixture(scope="module")
def scene():
    """A smooth photo-like image, its 'teacher' version (graded + grain), and the grain alone."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    photo = np.stack([0.6 * xx - 0.2, 0.5 * yy - 0.3, 0.3 * np.sin(6 * xx) + 0.1 * yy], axis=2)
    graded = np.clip(photo * 0.85 + np.array([0.08, 0.0, -0.1]), -1, 1)
    grain = rng.normal(0.0, 0.06, photo.shape)
    return photo, graded, grain


def test_identical_images_score_zero(scene):
    _, graded, grain = scene
    assert grade_texture(graded + grain, graded + grain) == {
        "grade_de2000": 0.0,
        "texture_swd": 0.0,
        "detail_energy_db": 0.0,
    }


def test_right_grade_missing_grain(scene):
    _, graded, grain = scene
    teacher = graded + grain
    assert grade_error(graded, teacher) < 1.0  # the grade is right (below a visible difference)
    assert texture_swd(graded, teacher) > 5.0  # the grain is missing
    assert detail_energy_db(graded, teacher) < -6.0  # ... and the energy says which way


def test_right_grain_wrong_grade(scene):
    photo, graded, grain = scene
    teacher = graded + grain
    wrong_grade = photo + grain  # the input's colours with the teacher's grain
    assert grade_error(wrong_grade, teacher) > 3.0
    assert texture_swd(wrong_grade, teacher) < 1.0
    assert abs(detail_energy_db(wrong_grade, teacher)) < 0.5


def test_swd_ignores_where_the_grain_is_but_not_how_strong(scene):
    _, graded, grain = scene
    teacher = graded + grain
    shuffled = graded + np.random.default_rng(1).normal(0.0, 0.06, graded.shape)  # other grain, same law
    stronger = graded + 2.0 * grain
    assert texture_swd(shuffled, teacher) < 1.0 < texture_swd(stronger, teacher)
    assert detail_energy_db(stronger, teacher) == pytest.approx(6.0, abs=0.5)
