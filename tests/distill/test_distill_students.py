"""Students and pixel losses: shapes, identity start, MAC budget, gradients, loss terms.

Example: .venv/bin/python -m pytest tests/distill/test_distill_students.py -q
"""

from __future__ import annotations

import pytest
import torch

from distill.pixel_losses import PixelLoss, ssim
from pocketgan.flops import count_macs
from pocketgan.models import available, build

FAMILIES = [("mobile-resnet", {"width": 4, "n_blocks": 2}), ("tiny-unet", {"width": 4})]


def test_both_families_registered():
    assert {"mobile-resnet", "tiny-unet"} <= set(available("student"))


@pytest.mark.parametrize(("name", "kwargs"), FAMILIES)
@pytest.mark.parametrize("norm", ["batch", "none"])
def test_student_shape_range_and_identity_start(name, kwargs, norm):
    torch.manual_seed(0)
    model = build(name, norm=norm, **kwargs).eval()
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
