"""Temporal stability metric (pocketgan.metrics.warping_error / flicker) and the test clips it is measured on."""

import numpy as np
import pytest

from pocketgan.data.clips import ClipSpec, camera_path, render, write_clip
from pocketgan.errors import UsageError
from pocketgan.metrics import flicker, warp_previous, warping_error

SMALL = ClipSpec(width=96, height=64, frames=6, fps=12)


def shifted(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1]])


def test_an_integer_pan_is_compensated_exactly():
    scene = np.random.default_rng(0).integers(0, 256, (80, 120, 3)).astype(np.float64)
    frames = [
        scene[10 : 10 + 40, 5 * t : 5 * t + 60] for t in range(4)
    ]  # the camera moves 5 px right a frame
    affines = [shifted(5 * t, 10) for t in range(4)]
    assert warping_error(frames, affines) == pytest.approx(0.0, abs=1e-9)
    assert warping_error(frames, [np.eye(3)] * 4) > 30  # uncompensated, the same frames change a lot


def test_warp_marks_what_the_previous_frame_did_not_see():
    previous = np.ones((10, 20, 3))
    _, valid = warp_previous(previous, shifted(0, 0), shifted(8, 0))
    assert valid[:, :11].all() and not valid[:, 12:].any()  # the 8 right-most columns (and edge) are new


def test_rendered_clip_motion_is_what_the_affines_say():
    frames = list(render(SMALL))
    pixels, affines = [f.pixels for f in frames], [f.affine for f in frames]
    compensated = warping_error(pixels, affines)
    assert compensated < 0.5 * warping_error(pixels, [np.eye(3)] * len(pixels))
    assert compensated < 8  # what is left: noise (sigma 2), the exposure ramp, resampling


def test_grade_jumps_raise_the_flicker_ratio_and_a_copy_scores_one():
    frames = list(render(SMALL))
    pixels, affines = [f.pixels.astype(np.float64) for f in frames], [f.affine for f in frames]
    gains = np.random.default_rng(1).uniform(0.85, 1.15, len(pixels))
    jumpy = [np.clip(p * g, 0, 255) for p, g in zip(pixels, gains, strict=True)]
    assert flicker(pixels, pixels, affines)["ratio"] == pytest.approx(1.0)
    assert flicker(jumpy, pixels, affines)["ratio"] > 1.5
    steady = [np.clip(p * 1.1, 0, 255) for p in pixels]  # a constant grade is no flicker
    assert flicker(steady, pixels, affines)["ratio"] == pytest.approx(1.1, abs=0.05)


def test_warping_error_refuses_mismatched_inputs():
    with pytest.raises(ValueError):
        warping_error([np.zeros((4, 4, 3))], [np.eye(3)])
    with pytest.raises(ValueError):
        warping_error([np.zeros((4, 4, 3))] * 3, [np.eye(3)] * 2)


def test_clips_are_deterministic_and_made_of_test_photos_only():
    first, second = list(render(SMALL)), list(render(SMALL))
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(first, second, strict=True))
    other_seed = next(iter(render(ClipSpec(width=96, height=64, frames=6, fps=12, seed=3))))
    assert not np.array_equal(first[0].pixels, other_seed.pixels)
    with pytest.raises(UsageError, match="test photos only"):
        next(iter(render(ClipSpec("colorful_cups", width=96, height=64))))  # a validation photo


def test_camera_path_pans_zooms_and_stays_inside_the_photo():
    spec = ClipSpec(width=1280, height=720, frames=30)
    affines = camera_path(spec, (1280, 800))
    scales = [a[0, 0] for a in affines]
    assert scales[-1] < scales[0]  # zoom in
    assert affines[-1][0, 2] > affines[0][0, 2]  # pan to the right
    for a in affines:
        corners = a @ np.array([[0, 1280, 0, 1280], [0, 0, 720, 720], [1, 1, 1, 1]])
        assert corners[0].min() >= 0 and corners[0].max() <= 1280
        assert corners[1].min() >= 0 and corners[1].max() <= 800


def test_write_clip_refuses_unknown_containers(tmp_path):
    with pytest.raises(UsageError):
        write_clip(SMALL, tmp_path / "clip.avi")
