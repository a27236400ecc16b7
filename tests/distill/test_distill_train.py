"""A few steps run, lower the loss and fill the run folder; the teacher cache is reused; NaN is caught."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketgan.checkpoint import load_checkpoint, load_student
from pocketgan.data import photos
from pocketgan.distill import distill
from pocketgan.distill.cache import TeacherOutputCache
from pocketgan.distill.runfolder import read_metrics


def test_a_few_steps_lower_the_loss_and_write_the_run_folder(tiny_config):
    config = tiny_config(steps=40, eval_every=20, checkpoint_every=20)
    result = distill(config)
    out = result.out
    assert result.steps == 40
    records = read_metrics(out)
    losses = [r["loss"] for r in records if "loss" in r and "event" not in r]
    assert losses[-1] < 0.7 * losses[0], losses
    assert records[-1]["step"] == 40 and records[-1]["final"] is True
    assert all("step" in r for r in records)
    assert {"config.toml", "metrics.jsonl", "last.pt", "best.pt"} <= {p.name for p in out.iterdir()}
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000020.png", "step_000040.png"]
    student, payload = load_student(out / "best.pt")
    assert payload["student"] == "mobile-resnet" and payload["student_kwargs"]["width"] == 4
    assert payload["metrics"]["validation_psnr_db"] == pytest.approx(result.best_psnr_db)
    assert payload["metrics"]["macs"] > 0
    assert student(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    state = load_checkpoint(out / "last.pt")  # weights_only=True under the hood
    assert state["step"] == 40 and isinstance(state["rng"]["torch"], torch.Tensor)


def test_best_checkpoint_is_chosen_on_validation_images_only(tiny_config, monkeypatch):
    """Instrument the one reader of validation/test photos: a run (evaluations, best.pt, average.pt) reads
    every validation photo and no test photo; metrics.jsonl carries validation figures and the baseline."""
    from pocketgan.data import photos

    read = []
    original = photos._read_split_file
    monkeypatch.setattr(photos, "_read_split_file", lambda path: read.append(path) or original(path))
    photos._split_photo.cache_clear()
    result = distill(tiny_config(steps=8, eval_every=4, average_every=2))
    validation = {p.path() for p in photos.split_photos("validation")}
    test = {p.path() for p in photos.split_photos("test")}
    assert set(read) == validation and not set(read) & test
    final = read_metrics(result.out)[-1]
    assert set(final["validation_per_image"]) == {p.name for p in photos.split_photos("validation")}
    assert final["validation_gain_db"] == pytest.approx(
        final["validation_psnr_db"] - final["validation_identity_psnr_db"]
    )
    assert 0 <= final["validation_below_baseline"] <= len(validation)
    assert load_student(result.out / "best.pt")[1]["metrics"]["validation_psnr_db"] == result.best_psnr_db


def test_second_run_never_recomputes_the_teacher(tiny_config, tmp_path, monkeypatch):
    distill(tiny_config(steps=4, eval_every=4))

    class Refuse:
        def __call__(self, x):
            raise AssertionError("teacher ran although its outputs were cached")

    import pocketgan.distill.trainer as trainer

    original = trainer.load_teacher

    def cached_only(spec, weights=None):
        teacher = original(spec, weights)
        teacher.module = None
        teacher._onnx_session = None
        teacher._run_onnx = Refuse()
        return teacher

    monkeypatch.setattr(trainer, "load_teacher", cached_only)
    result = distill(tiny_config(steps=4, eval_every=4, out=str(tmp_path / "second")))
    assert result.steps == 4


def test_bf16_teacher_targets_are_cached_apart_and_validation_stays_fp32(tiny_config, tmp_path):
    result = distill(tiny_config(steps=4, eval_every=4, teacher_precision="bf16"))
    folders = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(folders) == 2 and sum(name.startswith("bf16-") for name in folders) == 1
    (fp32,) = [name for name in folders if not name.startswith("bf16-")]
    validation = len(photos.split_photos("validation"))
    assert len(list((tmp_path / "cache" / fp32).rglob("*.npy"))) == validation  # the validation targets only
    assert math.isfinite(result.best_psnr_db)


def test_cache_keys_on_content_size_and_seed(tmp_path):
    calls = []

    def teacher(x):
        calls.append(len(x))
        return x * 0.5

    cache = TeacherOutputCache(tmp_path, "abc123")
    images = [np.full((8, 8, 3), v, np.uint8) for v in (10, 200, 90)]
    first = cache.outputs(teacher, images, size=8, seed=1, batch=2)
    again = cache.outputs(teacher, images, size=8, seed=1, batch=2)
    np.testing.assert_array_equal(first, again)
    assert calls == [2, 1]
    cache.outputs(teacher, images[:1], size=8, seed=2)
    assert calls == [2, 1, 1]
    assert all(p.suffix == ".npy" for p in tmp_path.rglob("*") if p.is_file())


def test_cache_stays_bounded_and_drops_least_recently_used(tmp_path):
    import os

    cache = TeacherOutputCache(tmp_path, "abc123", max_bytes=3 * 512)  # an 8x8 entry is 512 bytes
    images = [np.full((8, 8, 3), v, np.uint8) for v in range(5)]
    for age, image in enumerate(images[:2]):
        cache.outputs(lambda x: x, [image], size=8, seed=0)
        os.utime(cache.path(image, 8, 0), (1000 + age, 1000 + age))
    assert cache.get(images[0], 8, 0) is not None  # a hit makes images[0] the most recently used
    cache.outputs(lambda x: x, images[2:4], size=8, seed=0)
    kept = [cache.path(image, 8, 0).is_file() for image in images[:4]]
    assert kept == [True, False, True, True]
    assert sum(p.stat().st_size for p in tmp_path.rglob("*.npy")) <= 3 * 512


def test_forced_nan_is_skipped_then_rolled_back_with_lower_lr(tiny_config, monkeypatch, caplog):
    import pocketgan.distill.trainer as trainer

    real_build = trainer.build_pixel_loss
    calls = {"n": 0}

    class PoisonedAfterCheckpoint(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, student, teacher):
            calls["n"] += 1
            total, terms = self.inner(student, teacher)
            if 10 <= calls["n"] < 13:  # three non-finite steps in a row after the step-8 checkpoint
                total = total * float("nan")
            return total, terms

    monkeypatch.setattr(
        trainer, "build_pixel_loss", lambda weights: PoisonedAfterCheckpoint(real_build(weights))
    )
    result = distill(tiny_config(steps=16, nan_patience=3))
    assert result.steps == 16 and result.skipped_steps == 3 and result.rollbacks == 1
    events = [r for r in read_metrics(result.out) if "event" in r]
    assert [e["event"] for e in events] == ["non-finite"] * 3 + ["rollback"]
    assert events[-1]["step"] == 8 and events[-1]["lr_scale"] == 0.5
    assert events[-1]["from_step"] == 9
    assert "rolled back" in caplog.text
    student, _ = load_student(result.out / "best.pt")
    assert all(torch.isfinite(p).all() for p in student.state_dict().values() if p.is_floating_point())
    assert math.isfinite(result.best_psnr_db)


def test_feature_and_adversarial_losses_train(tiny_config):
    from pocketgan.models import build

    student = build("mobile-resnet", width=4, n_blocks=1)
    first_conv = next(n for n, m in student.named_modules() if isinstance(m, torch.nn.Conv2d))
    config = tiny_config(
        steps=6,
        eval_every=6,
        feature_weight=0.5,
        feature_layers=(("grade", first_conv),),
        adversarial_weight=0.05,
        discriminator_width=8,
    )
    result = distill(config)
    last = [r for r in read_metrics(result.out) if "feature" in r][-1]
    assert {"feature", "adversarial", "discriminator"} <= set(last)
    state = load_checkpoint(result.out / "last.pt")
    assert state["adapters"] and state["discriminator"] and state["discriminator_optimizer"]


def test_user_photo_folder_is_the_training_data(tiny_config, tmp_path):
    from PIL import Image

    from pocketgan.errors import UsageError

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    result = distill(tiny_config(data=str(photos), steps=4, eval_every=4, synthetic_fraction=0.0))
    assert result.steps == 4
    record = json.loads((result.out / "data.json").read_text())  # what it trained on: the user's files
    assert [(Path(e["name"]).name, e["split"]) for e in record["train"]] == [
        (f"p{i}.png", "user") for i in range(3)
    ]
    assert record["lfw_faces"] is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no readable images"):
        distill(tiny_config(data=str(tmp_path / "empty"), out=str(tmp_path / "other")))


def test_rollback_can_return_to_an_earlier_resolution_phase(tiny_config, monkeypatch):
    import pocketgan.distill.trainer as trainer

    real_build = trainer.build_pixel_loss
    calls = {"n": 0}

    def poisoned(weights):
        inner = real_build(weights)

        def forward(student, teacher):
            calls["n"] += 1
            total, terms = inner(student, teacher)
            return (total * float("nan") if 11 <= calls["n"] < 13 else total), terms

        return forward

    monkeypatch.setattr(trainer, "build_pixel_loss", lambda weights: _Wrap(poisoned(weights)))
    config = tiny_config(steps=16, size=48, size_schedule=((32, 0.5),), checkpoint_every=6, nan_patience=2)
    result = distill(config)
    assert result.steps == 16 and result.rollbacks == 1
    rollback = [r for r in read_metrics(result.out) if r.get("event") == "rollback"][0]
    assert rollback["step"] == 6 and rollback["from_step"] == 10  # back from the 48 px phase to 32 px
    sizes = [r["size"] for r in read_metrics(result.out) if "size" in r]
    assert sizes[0] == 32 and sizes[-1] == 48


class _Wrap(torch.nn.Module):
    def __init__(self, forward):
        super().__init__()
        self._forward = forward

    def forward(self, student, teacher):
        return self._forward(student, teacher)


def test_weight_average_is_the_mean_of_the_sampled_weights(tiny_config, tmp_path):
    """average_every=2 from half-way: average.pt is the mean of the student at steps 4, 6 and 8."""
    snapshots = {}

    def keep_checkpoint(step, record):  # last.pt is rewritten at every checkpoint step
        if step in (4, 6):
            snapshots[step] = load_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]

    config = tiny_config(steps=8, checkpoint_every=2, eval_every=4, average_every=2, average_from=0.5)
    result = distill(config, callback=keep_checkpoint)
    snapshots[8] = load_checkpoint(result.last_checkpoint)["state_dict"]
    averaged, payload = load_student(result.average_checkpoint)
    assert payload["metrics"]["averaged_checkpoints"] == 3
    for key, tensor in averaged.state_dict().items():
        if tensor.is_floating_point():
            expected = sum(snapshots[s][key] for s in (4, 6, 8)) / 3
            torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6, msg=key)
    final = read_metrics(result.out)[-1]
    assert final["final"] is True and final["average_averaged_checkpoints"] == 3
    assert final["average_validation_psnr_db"] == pytest.approx(result.average_metrics["validation_psnr_db"])
