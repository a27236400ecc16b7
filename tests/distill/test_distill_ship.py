"""`python -m pocketgan.distill.ship RUN_DIR ZOO_DIR` copies the student (as student.pt), config.toml, metrics.jsonl."""

import torch

from pocketgan.checkpoint import load_student
from pocketgan.distill import distill
from pocketgan.distill.ship import main


def test_ship_copies_a_finished_run_into_the_zoo(tiny_config, tmp_path, capsys):
    result = distill(tiny_config(steps=4, eval_every=4))
    zoo = tmp_path / "zoo" / "vintage-mobile"
    assert main([str(result.out), str(zoo)]) == 0
    assert sorted(p.name for p in zoo.iterdir()) == ["config.toml", "metrics.jsonl", "student.pt"]
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
