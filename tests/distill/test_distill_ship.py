"""`python -m pocketgan.distill.ship RUN_DIR ZOO_DIR` copies the student (as student.pt), config.toml, data.json,
metrics.jsonl; the shipped student never trained or was selected on a test photo."""

import json
from pathlib import Path

import pytest
import torch

from pocketgan.checkpoint import load_student
from pocketgan.distill import distill
from pocketgan.distill.ship import main


def test_ship_copies_a_finished_run_into_the_zoo(tiny_config, tmp_path, capsys):
    result = distill(tiny_config(steps=4, eval_every=4))
    zoo = tmp_path / "zoo" / "vintage-mobile"
    assert main([str(result.out), str(zoo)]) == 0
    assert sorted(p.name for p in zoo.iterdir()) == [
        "config.toml",
        "data.json",
        "metrics.jsonl",
        "student.pt",
    ]
    model, payload = load_student(zoo / "student.pt")
    assert payload["student"] == "mobile-resnet"
    assert (zoo / "config.toml").read_text() == (result.out / "config.toml").read_text()


def test_ship_refuses_an_unfinished_run(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main([str(tmp_path / "run"), str(tmp_path / "zoo")]) == 2
    assert "not a finished run" in capsys.readouterr().err


def test_ship_takes_the_weight_average_when_the_run_kept_one(tiny_config, tmp_path, capsys):
    result = distill(tiny_config(steps=4, eval_every=4, average_every=1))
    zoo = tmp_path / "zoo"
    assert main([str(result.out), str(zoo)]) == 0
    shipped, _ = load_student(zoo / "student.pt")
    average, _ = load_student(result.average_checkpoint)
    for key, tensor in average.state_dict().items():
        assert torch.equal(shipped.state_dict()[key], tensor)


def _assert_never_saw_a_test_photo(data: dict) -> None:
    from pocketgan.data import photos

    test = photos.split_photos("test")
    test_hashes = {p.sha256 for p in test} | {p.shipped_sha256 for p in test}
    assert data["train"], "no training photo recorded"
    assert all(entry["split"] in ("train", "user") for entry in data["train"])
    assert not test_hashes & {entry["sha256"] for entry in data["train"]}
    validation = {p.name: p.shipped_sha256 for p in photos.split_photos("validation")}
    assert all(validation.get(entry["name"]) == entry["sha256"] for entry in data["validation"])
    assert not test_hashes & {entry["sha256"] for entry in data["validation"]}


def test_a_run_records_what_it_trained_and_selected_on(tiny_config):
    result = distill(tiny_config(steps=2, eval_every=2))
    data = json.loads((result.out / "data.json").read_text())
    _assert_never_saw_a_test_photo(data)
    from pocketgan.data import photos

    assert [e["name"] for e in data["validation"]] == [p.name for p in photos.split_photos("validation")]
    # the check itself fails on a record that lists a test photo
    coffee = next(p for p in photos.split_photos("test") if p.name == "coffee")
    data["train"].append({"name": "coffee", "split": "train", "sha256": coffee.sha256})
    with pytest.raises(AssertionError):
        _assert_never_saw_a_test_photo(data)


def test_the_shipped_student_never_trained_or_was_selected_on_a_test_photo():
    """By content hash, from the data.json shipped beside it (written by the run that made it)."""
    zoo = Path(__file__).parents[2] / "pocketgan" / "zoo" / "vintage-mobile"
    _assert_never_saw_a_test_photo(json.loads((zoo / "data.json").read_text()))


def test_the_shipped_student_was_made_by_the_recipe():
    """zoo/vintage-mobile/config.toml (written by the run that made the student) is recipes/vintage.toml: a
    recipe change without `make student`, or a student shipped from another run, fails here."""
    from dataclasses import replace

    from pocketgan.distill.config import resolve_config

    root = Path(__file__).parents[2]
    shipped = resolve_config(root / "pocketgan" / "zoo" / "vintage-mobile" / "config.toml")
    recipe = resolve_config(root / "recipes" / "vintage.toml")
    assert replace(shipped, out=recipe.out) == recipe
    checkpoint = torch.load(root / "pocketgan" / "zoo" / "vintage-mobile" / "student.pt", weights_only=True)
    assert checkpoint["student_kwargs"] == {"width": recipe.width, **recipe.student_kwargs}
