"""Full-size targets (issue 21): a student told its working size, trained on crops of whole photos at
`fullres_resolution` against the teacher run on the whole photo at that size.

Example: .venv/bin/python -m pytest tests/distill/test_distill_fullres.py -q
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pocketgan.distill import distill
from pocketgan.distill.data import FullSizeTargets
from pocketgan.distill.runfolder import read_metrics
from pocketgan.errors import UsageError
from pocketgan.evals.fullres import scaled_size, split_full_size
from pocketgan.images import context_thumbnail, to_float, to_nchw
from pocketgan.models import build
from pocketgan.models.students import SizeFeature, size_feature

SIZED = {"width": 8, "n_blocks": 1, "context_width": 8, "colour": "affine", "second_moments": True}


def _full_size_run(tmp_path, shape: tuple[int, int], count: int, **changes) -> dict:
    """tiny_config keywords for a run on `count` random photos of `shape` with a size_input student."""
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    settings = dict(
        data=str(photos),
        student="patch-resnet",
        width=8,
        student_kwargs={"n_blocks": 1, "context_width": 8, "size_input": True},
        steps=8,
        synthetic_fraction=0.0,
    )
    return settings | changes


@pytest.mark.parametrize(("height", "width"), [(256, 256), (852, 1280), (32, 48), (3024, 4032)])
def test_size_feature_from_graph_ops_matches_the_shape(height, width):
    stem = torch.zeros(2, 5, height // 4, width // 4)  # what the patch-4 stem gives for an H x W image
    got = SizeFeature(4)(stem)
    assert got.shape == (2, 1, 1, 1)
    assert torch.allclose(got, torch.full_like(got, size_feature(height, width)), atol=1e-5)
    assert size_feature(256, 256) == 0.0
    assert math.isclose(size_feature(512, 512), 1.0)


def test_size_input_changes_the_grade_and_defaults_to_the_image_size():
    torch.manual_seed(0)
    model = build("patch-resnet", size_input=True, **SIZED).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.2)
    x, thumb = torch.rand(1, 3, 64, 96) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        own = model(x, thumb)
        explicit = model(x, thumb, torch.tensor([size_feature(64, 96)]))
        other = model(x, thumb, torch.tensor([2.0]))
    assert torch.allclose(own, explicit, atol=1e-6)
    assert (own - other).abs().max() > 1e-3, "the working size must reach the global context"
    plain = build("patch-resnet", **SIZED)
    assert plain.context.mlp[0].in_channels + 1 == model.context.mlp[0].in_channels


def test_a_full_size_batch_crops_input_and_target_at_the_same_window():
    rng = np.random.default_rng(0)
    photos = tuple(rng.integers(0, 256, (40 + 8 * i, 60, 3), dtype=np.uint8) for i in range(3))
    targets = tuple((-to_float(p)).astype(np.float16) for p in photos)  # target = the negated photo
    full = FullSizeTargets(
        photos=photos,
        targets=targets,
        thumbnails=torch.from_numpy(to_nchw([context_thumbnail(p) for p in photos])),
        sizes=torch.tensor([size_feature(*p.shape[:2]) for p in photos]),
    )
    x, y, thumbs, sizes = full.batch(np.random.default_rng(1), 6, 32)
    assert x.shape == y.shape == (6, 3, 32, 32) and thumbs.shape == (6, 3, 256, 256) and sizes.shape == (6,)
    assert torch.allclose(y, -x, atol=1e-2)  # the same window of input and target
    for thumb, value in zip(
        thumbs, sizes, strict=True
    ):  # each crop carries its own photo's thumbnail and size
        k = [float(s) for s in full.sizes].index(float(value))
        assert torch.equal(thumb, full.thumbnails[k])


def test_fullres_config_is_checked(tiny_config):
    with pytest.raises(UsageError, match="size_input"):
        tiny_config(fullres_resolution=64)
    sized = {"student": "patch-resnet", "student_kwargs": {"size_input": True, "width": 8}}
    with pytest.raises(UsageError, match="must be 0 or >= size"):
        tiny_config(fullres_resolution=16, **sized)
    with pytest.raises(UsageError, match="fullres_fraction"):
        tiny_config(fullres_resolution=64, fullres_fraction=1.5, **sized)
    assert tiny_config(fullres_resolution=64, **sized).fullres_resolution == 64


def test_a_run_with_full_size_targets_feeds_whole_photo_context(tiny_config, tmp_path, monkeypatch):
    from pocketgan.models.students import PatchResNet

    calls = []
    forward = PatchResNet.forward

    def spy(self, x, thumb=None, size=None):
        calls.append((tuple(x.shape), thumb is not None, None if size is None else size.tolist()))
        return forward(self, x, thumb, size)

    monkeypatch.setattr(PatchResNet, "forward", spy)
    config = tiny_config(**_full_size_run(tmp_path, (48, 72), 3, eval_every=8, fullres_resolution=64))
    result = distill(config)
    assert result.steps == 8
    whole = [c for c in calls if c[1] and c[0][0] == 4]  # full-size batches: crops, whole-photo context
    pool = [c for c in calls if not c[1] and c[0][0] == 4]
    assert whole and pool, "both kinds of batch are drawn at fullres_fraction 0.5"
    assert all(c[0] == (4, 3, 32, 32) for c in whole)
    expected = size_feature(*scaled_size((48, 72), 64))  # each photo at fullres_resolution, whole
    assert all(math.isclose(v, expected, rel_tol=1e-6) for c in whole for v in c[2])
    validation = [name for name, _ in split_full_size("validation", 64)]
    cached = list((tmp_path / "cache" / "teacher_fullres").rglob("*.npy"))
    assert len(cached) == 3 + len(validation), (
        "the teacher ran once on each whole photo at fullres_resolution"
    )
    evaluated = [r for r in read_metrics(result.out) if "validation_fullres_gain_db" in r]
    assert evaluated, "the validation split at fullres_resolution is reported beside the training size"
    assert sorted(evaluated[-1]["validation_fullres_per_image"]) == sorted(validation)
    per_image = evaluated[-1]["validation_fullres_per_image"].values()
    assert evaluated[-1]["validation_fullres_below_baseline"] == sum(g < 0 for g in per_image)


def test_fullres_select_chooses_best_pt_on_both_sizes(tiny_config, tmp_path, monkeypatch):
    """The training-size PSNR alone picks one step; a full-size PSNR that favours the other step moves
    best.pt there only with fullres_select (full-size figures faked: only the choice is under test)."""
    from pocketgan.checkpoint import load_student
    from pocketgan.distill import trainer

    favoured: list[int] = []

    def fake(self):
        score = 1000.0 if self.step in favoured else 0.0
        return {
            "validation_fullres_psnr_db": score,
            "validation_fullres_gain_db": 0.0,
            "validation_fullres_below_baseline": 0,
            "validation_fullres_per_image": {},
        }

    monkeypatch.setattr(trainer._Run, "_evaluate_full_size", fake)
    common = _full_size_run(tmp_path, (40, 56), 2, eval_every=4, fullres_resolution=48)
    plain = distill(tiny_config(out=str(tmp_path / "plain"), **common))
    chosen = load_student(plain.out / "best.pt")[1]["metrics"]["step"]
    favoured.append(4 if chosen == 8 else 8)  # the step the training size did not choose
    both = distill(tiny_config(out=str(tmp_path / "both"), fullres_select=True, **common))
    assert load_student(both.out / "best.pt")[1]["metrics"]["step"] == favoured[0]
    with pytest.raises(UsageError, match="fullres_select needs"):
        tiny_config(fullres_select=True)
