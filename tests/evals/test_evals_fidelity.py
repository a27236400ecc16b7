import math

import numpy as np
import pytest

from pocketgan.metrics import UNAVAILABLE_WEIGHTS, compare_images, json_ready, lpips_distance, psnr, ssim


def test_psnr_matches_the_definition_on_the_minus_one_one_range():
    a = np.zeros((16, 16, 3), np.float32)
    b = np.full((16, 16, 3), 0.02, np.float32)
    assert psnr(b, a) == pytest.approx(10 * np.log10(2.0**2 / 0.02**2), rel=1e-6)
    assert psnr(a, a) == math.inf
    assert json_ready({"psnr_db": [psnr(a, a), -math.inf, None, 1.5]}) == {
        "psnr_db": ["inf", "-inf", None, 1.5]
    }


def test_ssim_and_compare_images_per_image_and_mean():
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (24, 24, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), -1, 1).astype(np.float32)
    assert ssim(a, a) == pytest.approx(1.0)
    assert 0 < ssim(b, a) < 1
    result = compare_images([a, b], [a, a], ["same", "noisy"])
    assert set(result["per_image"]) == {"same", "noisy"}
    assert result["per_image"]["same"]["psnr_db"] == math.inf and result["psnr_db"] == math.inf
    assert result["per_image"]["noisy"]["psnr_db"] < 40


def test_lpips_without_local_weights_says_why():
    assert lpips_distance(None, [], []) == UNAVAILABLE_WEIGHTS
