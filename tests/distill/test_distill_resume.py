"""Kill-and-resume continues at the saved step and ends exactly where an uninterrupted run ends."""

import pytest
import torch

from pocketgan.checkpoint import load_checkpoint
from pocketgan.distill import distill
from pocketgan.distill.runfolder import read_metrics
from pocketgan.errors import ModelLoadError


class Killed(Exception):
    pass


def _kill_at(step):
    def callback(current, record):
        if current == step:
            raise Killed

    return callback


def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny_config, tmp_path):
    changes = dict(
        steps=16,
        checkpoint_every=6,
        eval_every=4,
        adversarial_weight=0.05,
        discriminator_width=8,
        ema_decay=0.9,
        average_every=3,
        average_from=0.25,
    )
    reference = distill(tiny_config(out=str(tmp_path / "straight"), **changes))

    killed_config = tiny_config(out=str(tmp_path / "killed"), **changes)
    with pytest.raises(Killed):
        distill(killed_config, callback=_kill_at(9))  # dies 3 steps after the step-6 checkpoint
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["step"] == 6

    resumed = distill(killed_config, resume=True)
    assert resumed.resumed_from_step == 6 and resumed.steps == 16
    straight = load_checkpoint(reference.out / "last.pt")
    continued = load_checkpoint(resumed.out / "last.pt")
    assert continued["step"] == straight["step"] == 16
    assert continued["average_count"] == straight["average_count"] == 4  # steps 6, 9, 12, 15
    for part in ("state_dict", "discriminator", "ema", "average"):
        for key, tensor in straight[part].items():
            torch.testing.assert_close(continued[part][key], tensor, rtol=0, atol=1e-6, msg=f"{part} {key}")
    assert resumed.best_psnr_db == pytest.approx(reference.best_psnr_db, abs=1e-4)
    steps = [r["step"] for r in read_metrics(resumed.out) if "event" not in r and "final" not in r]
    assert steps == sorted(set(steps)) and steps[-1] == 16  # lines logged after the checkpoint were dropped


def test_a_new_run_refuses_to_overwrite_an_old_one(tiny_config):
    from pocketgan.errors import UsageError

    distill(tiny_config(steps=2))
    with pytest.raises(UsageError, match="--resume"):
        distill(tiny_config(steps=2))


def test_resume_refuses_a_checkpoint_that_would_run_code(tiny_config, tmp_path, malicious_checkpoint):
    config = tiny_config()
    marker = malicious_checkpoint(tmp_path / "run" / "last.pt")
    with pytest.raises(ModelLoadError, match="refused"):
        distill(config, resume=True)
    assert not marker.exists()
