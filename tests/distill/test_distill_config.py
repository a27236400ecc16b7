"""DistillConfig: validation, TOML round trip, precedence of preset < recipe file < flags, phases."""

import pytest

from pocketgan.distill.config import DistillConfig, read_toml, resolve_config, save_resolved_config
from pocketgan.errors import UsageError


def test_resolved_config_round_trips_through_toml(tmp_path):
    config = DistillConfig(
        size_schedule=((128, 0.6, 8),),
        feature_layers=(("model.10", "blocks.0"),),
        feature_weight=0.5,
        student_kwargs={"n_blocks": 3, "norm": "none"},
        pixel_loss={"l1": 1.0, "ssim": 0.2},
        data=None,
    )
    path = save_resolved_config(config, tmp_path / "config.toml")
    assert resolve_config(path) == config


def test_flags_override_recipe_which_overrides_preset(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text("steps = 77\nsize = 64\n[pixel_loss]\nl1 = 2.0\n")
    config = resolve_config(recipe, "quick", size=96)
    assert (config.steps, config.size, config.pixel_loss) == (77, 96, {"l1": 2.0})
    assert config.batch == resolve_config(None, "quick").batch  # untouched preset value survives


def test_vintage_recipe_is_valid():
    from pathlib import Path

    recipe = Path(__file__).parents[2] / "recipes" / "vintage.toml"
    config = resolve_config(recipe)
    assert config.teacher == "vintage" and config.size == 256
    assert set(read_toml(recipe)) <= set(DistillConfig.__dataclass_fields__)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
        ({"device": "tpu"}, "device"),
        ({"size": 30}, "multiple of 4"),
        ({"size_schedule": ((64, 1.2),)}, "fraction"),
        ({"feature_weight": 1.0}, "feature_layers"),
        ({"pixel_loss": {"l1": -1}}, "pixel_loss"),
    ],
)
def test_bad_values_are_refused_with_a_usage_error(changes, words):
    with pytest.raises(UsageError, match=words):
        DistillConfig(**changes)


def test_unknown_keys_and_presets_are_named(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text("stepz = 3\n")
    with pytest.raises(UsageError, match="stepz"):
        resolve_config(recipe)
    with pytest.raises(UsageError, match="preset"):
        resolve_config(None, "slow")


def test_phases_split_steps_between_low_res_and_final_size():
    config = DistillConfig(steps=100, size=256, batch=4, size_schedule=((64, 0.5, 16), (128, 0.3)))
    assert config.phases() == [(0, 64, 16), (50, 128, 4), (80, 256, 4)]
    assert DistillConfig(steps=10).phases() == [(0, 256, 4)]
