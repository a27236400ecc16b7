"""colour_start: the student's colour transform starts at the least-squares fit to the teacher on the pool."""

import pytest
import torch

from pocketgan.checkpoint import load_student
from pocketgan.distill.colour_start import fit_colour_start, set_colour_start
from pocketgan.errors import UsageError
from pocketgan.models.students import PatchResNet


def _inputs(n=6, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=generator) * 1.6 - 0.8


def _graded(x):
    """A fixed quadratic grade, the kind a vintage filter applies: warmer, darker, a little curved."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    return torch.stack([0.9 * r + 0.1 * g + 0.05, 0.8 * g + 0.1 * r * r - 0.1, 0.6 * b + 0.2 * g - 0.15], 1)


@pytest.mark.parametrize("normalized", [False, True])
def test_the_fit_recovers_a_fixed_colour_grade(normalized):
    torch.manual_seed(0)
    student = PatchResNet(width=8, n_blocks=1, context_width=8, normalized_colour=normalized)
    x = _inputs()
    y = _graded(x)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    values, scores = fit_colour_start(student, x, y)
    # the fit does not change the student; setting it does, and only the colour part of one bias
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())
    assert scores["psnr_after_db"] > scores["psnr_before_db"] + 10
    set_colour_start(student, values)
    changed = [k for k, v in student.state_dict().items() if not torch.equal(before[k], v)]
    assert changed == ["context.mlp.2.bias"]
    with torch.no_grad():
        error = (student(x) - y).abs().max().item()
    # exact for the raw quadratic terms; the normalized one is affine in each image's own statistics
    assert error < (1e-3 if not normalized else 0.2)
    if not normalized:
        held_out = _inputs(seed=1)
        with torch.no_grad():
            assert (student(held_out) - _graded(held_out)).abs().max().item() < 1e-3


def test_a_student_without_a_colour_transform_is_refused():
    student = PatchResNet(width=8, n_blocks=1, context_width=8, colour="none")
    with pytest.raises(UsageError, match="colour_start needs"):
        fit_colour_start(student, _inputs(), _inputs())


def _tiny_patch_resnet(tiny_config, **changes):
    """A seconds-long colour_start run of a tiny patch-resnet (8 steps, evaluated at the end)."""
    values = dict(
        student="patch-resnet",
        width=8,
        student_kwargs={"n_blocks": 1, "context_width": 8},
        steps=8,
        eval_every=8,
    )
    return tiny_config(**{**values, **changes})


def test_a_run_starts_from_the_fitted_colour_transform(tiny_config):
    """colour_start = true: the run's first record is the fit on the first pool, and the start it trains
    from (EMA included) is the fitted bias, not the identity."""
    from pocketgan.distill import distill
    from pocketgan.distill.runfolder import read_metrics

    config = _tiny_patch_resnet(
        tiny_config,
        colour_start=True,
        lr=1e-12,  # the weights stay where the fit put them
        ema_decay=0.5,
    )
    result = distill(config)
    first = read_metrics(result.out)[0]
    assert first["step"] == 0 and first["colour_start_psnr_after_db"] > first["colour_start_psnr_before_db"]
    student, _ = load_student(result.best_checkpoint)
    bias = student.context.mlp[2].bias
    assert bias.abs().max() > 1e-3  # the identity start has a zero bias


def test_colour_start_is_off_by_default_and_a_resumed_run_does_not_fit_again(tiny_config):
    import dataclasses

    from pocketgan.distill import distill
    from pocketgan.distill.config import DistillConfig
    from pocketgan.distill.runfolder import read_metrics

    assert DistillConfig().colour_start is False
    config = _tiny_patch_resnet(
        tiny_config,
        checkpoint_every=8,
        colour_start=True,
    )
    result = distill(config)
    distill(dataclasses.replace(config, steps=12), resume=True)
    records = read_metrics(result.out)
    assert sum("colour_start_images" in r for r in records) == 1  # resumed from last.pt, not fitted again
    assert records[-1]["step"] == 12
