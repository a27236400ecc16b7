"""The vintage teacher (CycleGAN ResNet-9, 11.4M params) as a Core ML fp32 package at 256 px vs torch."""

from __future__ import annotations

import numpy as np
import pytest
from coreml_nets import convert, torch_reference

from pocketgan.errors import ModelLoadError
from pocketgan.runtime.coreml_reference import run_program

pytestmark = [pytest.mark.coreml, pytest.mark.slow]


def test_vintage_teacher_fp32_matches_torch(tmp_path):
    from pocketgan.data import heldout_images
    from pocketgan.models.zoo import load_vintage

    try:
        teacher = load_vintage()
    except ModelLoadError as exc:
        pytest.skip(str(exc))
    package = convert(teacher, tmp_path / "teacher.fp32.mlpackage", size=256)
    for name, image in heldout_images(256):
        x = image.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1.0
        result = run_program(package, {"input": image[None]})
        assert result.first_nonfinite is None, name
        error = np.abs(next(iter(result.values())) - torch_reference(teacher, x)).max()
        assert error <= 1e-3, f"{name}: max-abs {error:.3g}"
