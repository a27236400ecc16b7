"""Students and pixel losses: shapes, identity start, MAC budget, gradients, loss terms.

Example: .venv/bin/python -m pytest tests/distill/test_distill_students.py -q
"""

from __future__ import annotations

import pytest
import torch

from pocketgan.distill.pixel_losses import PixelLoss, ssim
from pocketgan.flops import count_macs
from pocketgan.models import available, build

FAMILIES = [
    ("mobile-resnet", {"width": 4, "n_blocks": 2}),
    ("tiny-unet", {"width": 4}),
    ("patch-resnet", {"width": 8, "n_blocks": 1, "context_width": 8}),
    ("patch-resnet", {"width": 8, "n_blocks": 1, "context_width": 8, "normalized_colour": True}),
    ("patch-resnet", {"width": 8, "n_blocks": 1, "normalized_colour": True, "context_features": False}),
    (
        "patch-resnet",
        {"width": 8, "n_blocks": 1, "context_width": 8, "colour": "affine", "second_moments": True},
    ),
]


def test_all_families_registered():
    assert {"mobile-resnet", "tiny-unet", "patch-resnet"} <= set(available("student"))


# mobile-resnet and tiny-unet take BatchNorm or no norm; patch-resnet has no norm layers.
NORM_CASES = [(name, {**kwargs, "norm": norm}) for name, kwargs in FAMILIES[:2] for norm in ("batch", "none")]


@pytest.mark.parametrize(("name", "kwargs"), NORM_CASES + FAMILIES[2:])
def test_student_shape_range_and_identity_start(name, kwargs):
    torch.manual_seed(0)
    model = build(name, **kwargs).eval()
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert float(y.abs().max()) <= 1.0
    assert torch.allclose(y, x, atol=1e-6)  # an untrained student does nothing


def test_mobile_resnet_width16_under_mac_budget():
    assert count_macs(build("mobile-resnet", width=16), 256) < 0.62e9


def test_tiny_unet_default_under_mac_budget():
    assert count_macs(build("tiny-unet"), 256) < 0.62e9


def test_patch_resnet_default_under_mac_budget():
    assert count_macs(build("patch-resnet"), 256) < 0.62e9


@pytest.mark.parametrize("colour", ["quadratic", "affine", "none"])
def test_colour_transform_matches_its_definition(colour):
    """The product-and-matmul form of the per-image colour transform equals the plain per-pixel formula."""
    from pocketgan.models.students import COLOUR_TERMS, GlobalContext

    torch.manual_seed(0)
    context = GlobalContext(4, [4], 8, colour=colour)
    torch.nn.init.normal_(context.mlp[2].weight, std=0.3)
    x, features = torch.rand(2, 3, 8, 8) * 2 - 1, torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        _, matrix = context(x, features)
        graded = context.grade(x.permute(0, 2, 3, 1), matrix).permute(0, 3, 1, 2)
        params = context.mlp(
            torch.cat([x.mean((2, 3), True), (x * x).mean((2, 3), True), features.mean((2, 3), True)], 1)
        )
    terms = COLOUR_TERMS[colour]
    if not terms:
        assert torch.equal(graded, x)
        return
    basis = torch.stack([x[:, i] * (1 if j is None else x[:, j]) for i, j in terms], dim=1)  # (N, T, H, W)
    mix = params[:, 8 : 8 + 3 * len(terms), 0, 0].reshape(2, 3, len(terms))
    shift = params[:, 8 + 3 * len(terms) : 8 + 3 * len(terms) + 3]
    expected = x + torch.einsum("nct,nthw->nchw", mix, basis) + shift
    assert torch.allclose(graded, expected, atol=1e-5)


@pytest.mark.parametrize("colour", ["quadratic", "affine"])
def test_normalized_colour_change_acts_on_standardized_channels(colour):
    """With normalized colour, the MLP's change to R, G, B applies to (x - mean) / std per channel."""
    from pocketgan.models.students import COLOUR_TERMS, GlobalContext

    torch.manual_seed(0)
    context = GlobalContext(4, [4], 8, colour=colour, normalized=True)
    torch.nn.init.normal_(context.mlp[2].weight, std=0.3)
    x, features = torch.rand(2, 3, 8, 8) * 2 - 1, torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        _, matrix = context(x, features)
        graded = context.grade(x.permute(0, 2, 3, 1), matrix).permute(0, 3, 1, 2)
        mean, square = x.mean((2, 3), True), (x * x).mean((2, 3), True)
        std = (square - mean * mean).sqrt()
        params = context.mlp(torch.cat([mean, square, features.mean((2, 3), True), std], 1))
    terms = COLOUR_TERMS[colour]
    standardized = (x - mean) / std
    basis = torch.stack(
        [standardized[:, i] if j is None else x[:, i] * x[:, j] for i, j in terms], dim=1
    )  # (N, T, H, W)
    mix = params[:, 8 : 8 + 3 * len(terms), 0, 0].reshape(2, 3, len(terms))
    shift = params[:, 8 + 3 * len(terms) : 8 + 3 * len(terms) + 3]
    expected = x + torch.einsum("nct,nthw->nchw", mix, basis) + shift
    assert torch.allclose(graded, expected, atol=1e-4)


def test_bad_norm_is_refused():
    with pytest.raises(ValueError, match="norm"):
        build("mobile-resnet", width=4, norm="instance")


@pytest.mark.parametrize(("name", "kwargs"), FAMILIES)
def test_gradients_reach_every_parameter(name, kwargs):
    torch.manual_seed(0)
    model = build(name, **kwargs)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    target = (x * 0.8 + 0.1).clamp(-1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = PixelLoss(l1=1.0, ssim=0.5, low_pass=1.0, high_pass=0.5)
    first = None
    for _ in range(2):
        opt.zero_grad()
        loss, _ = loss_fn(model(x), target)
        loss.backward()
        first = float(loss.detach()) if first is None else first
        opt.step()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    with torch.no_grad():
        assert float(loss_fn(model(x), target)[0]) < first


def test_pixel_loss_terms_and_values():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    total, terms = PixelLoss(l1=1.0, ssim=1.0, low_pass=1.0, high_pass=1.0, mse=1.0)(x, x)
    assert set(terms) == {"l1", "ssim", "low_pass", "high_pass", "mse"}
    assert abs(float(total)) < 1e-5
    y = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1)
    total, terms = PixelLoss(l1=2.0, ssim=0.5)(y, x)
    assert set(terms) == {"l1", "ssim"}
    assert abs(float(total) - (2.0 * terms["l1"] + 0.5 * terms["ssim"])) < 1e-5
    assert 0 < float(ssim(y, x)) < 1


def test_ssim_matches_skimage():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    torch.manual_seed(0)
    x = torch.rand(1, 3, 48, 48) * 2 - 1
    y = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)
    expected = skimage_metrics.structural_similarity(
        x[0].permute(1, 2, 0).numpy(),
        y[0].permute(1, 2, 0).numpy(),
        channel_axis=2,
        data_range=2.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert abs(float(ssim(y, x)) - expected) < 0.02


def test_pixel_loss_rejects_bad_weights():
    with pytest.raises(ValueError):
        PixelLoss(l1=-1.0)
    with pytest.raises(ValueError):
        PixelLoss(l1=0.0)


def test_shipped_student_loads_and_is_within_the_mac_budget():
    """The zoo's full-recipe student (what `make demo` exports) is a weights-only checkpoint whose image path
    is <= 0.62 GMACs at 256² (issue 3's budget, 80x below the teacher). Its thumb_norm thumbnail path is a
    fixed cost per photo on top, whatever the size, counted by count_macs and held under 0.45 GMACs: with it
    the student is 1.00 GMACs at 256² and over that budget there (README, "What thumbnail normalization
    costs")."""
    from pocketgan.checkpoint import load_student
    from pocketgan.demo import SHIPPED_STUDENT

    model, payload = load_student(SHIPPED_STUDENT)
    image_path = count_macs(model, 256, thumbnail=False)
    assert image_path <= 0.62e9
    assert count_macs(model, 256) - image_path <= 0.45e9
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert model(x).shape == x.shape
