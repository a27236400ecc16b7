"""Students' global context from a thumbnail: thumb=None is today's model bit for bit; with a thumbnail the
grade no longer depends on the resolution the convolutional path runs at.

Example: .venv/bin/python -m pytest tests/distill/test_distill_thumbnail.py -q
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from pocketgan.models import build

FAMILIES = [
    ("mobile-resnet", {"width": 4, "n_blocks": 2}),
    ("tiny-unet", {"width": 4}),
    ("patch-resnet", {"width": 8, "n_blocks": 1, "context_width": 8}),
    ("patch-resnet", {"width": 8, "n_blocks": 1, "normalized_colour": True, "context_features": False}),
    (
        "patch-resnet",
        {"width": 8, "n_blocks": 1, "context_width": 8, "colour": "affine", "second_moments": True},
    ),
    ("patch-resnet", {"width": 8, "n_blocks": 2, "context_width": 8, "colour": "affine", "thumb_norm": True}),
]
ZOO_STUDENT = "pocketgan/zoo/vintage-mobile/student.pt"


def _random_student(name: str, kwargs: dict) -> torch.nn.Module:
    """A student with every weight random (the zero-initialised heads too), so each path matters."""
    torch.manual_seed(0)
    model = build(name, **kwargs).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.2)
    return model


@pytest.mark.parametrize(("name", "kwargs"), FAMILIES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FAMILIES)])
def test_thumb_none_is_thumb_equal_to_input(name, kwargs):
    model = _random_student(name, kwargs)
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        plain, explicit = model(x), model(x, x)
        other = model(x, torch.rand(2, 3, 32, 32) * 2 - 1)
    assert torch.equal(plain, explicit)
    assert (plain - other).abs().max() > 1e-3, "the thumbnail must drive the global context"


@pytest.mark.parametrize(("name", "kwargs"), FAMILIES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FAMILIES)])
def test_grade_follows_the_thumbnail_not_the_resolution(name, kwargs):
    """A flat image: only the global context (grade) differs between sizes when the thumbnail is shared."""
    model = _random_student(name, kwargs)
    thumb = torch.rand(1, 3, 32, 32) * 2 - 1
    colour = thumb.mean(dim=(2, 3), keepdim=True)
    with torch.no_grad():
        small = model(colour.expand(1, 3, 64, 64), thumb)
        large = model(colour.expand(1, 3, 128, 96), thumb)
        own = model(colour.expand(1, 3, 128, 96))
    # Away from the zero-padded borders the convolutions see the same flat input at both sizes.
    centre_small, centre_large = small[..., 24:40, 24:40], large[..., 56:72, 40:56]
    assert torch.allclose(centre_small, centre_large, atol=1e-5)
    assert not torch.allclose(large[..., 56:72, 40:56], own[..., 56:72, 40:56], atol=1e-3)


def test_zoo_student_thumb_none_unchanged_at_256():
    """The shipped student: model(x) == model(x, thumb=x) bit for bit at 256² (thumb=None takes the
    code path of the model before the thumbnail; checked against main's output by hand, bit for bit)."""
    from pocketgan.models.resolve import resolve

    model = resolve(ZOO_STUDENT).torch_module().eval()
    torch.manual_seed(0)
    x = F.interpolate(torch.rand(1, 3, 16, 16) * 2 - 1, size=(256, 256), mode="bilinear")
    with torch.no_grad():
        assert torch.equal(model(x), model(x, x))


def test_thumb_norm_gives_a_tile_the_whole_images_result():
    """thumb_norm: each block's norm comes from the thumbnail, so a tile run with the whole image's thumbnail
    (and size) matches the whole image's output away from the tile's borders; its own statistics would not."""
    model = _random_student(
        "patch-resnet",
        {
            "width": 8,
            "n_blocks": 2,
            "context_width": 8,
            "colour": "affine",
            "size_input": True,
            "thumb_norm": True,
        },
    )
    torch.manual_seed(1)
    whole = F.interpolate(torch.rand(1, 3, 24, 32) * 2 - 1, size=(96, 128), mode="bilinear")
    thumb = F.interpolate(whole, size=(32, 32), mode="area")
    size = model.size_feature(torch.zeros(1, 1, 24, 32))
    with torch.no_grad():
        full = model(whole, thumb)
        tile = model(whole[..., 16:80, 32:96], thumb, size)  # a 64x64 tile on the patch grid
        alone = model(whole[..., 16:80, 32:96])
    inner = (slice(None), slice(None), slice(24, 40), slice(24, 40))  # 24 px from the tile's borders
    assert torch.allclose(tile[inner], full[..., 40:56, 56:72], atol=1e-5)
    assert not torch.allclose(alone[inner], full[..., 40:56, 56:72], atol=1e-3)
