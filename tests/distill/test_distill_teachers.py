"""Teachers: module:factory (+ weights), ONNX black box, .pt2, feature taps, stable hashes, refusals."""

import pytest
import torch
from distill_nets import tiny_teacher, write_onnx_teacher

from pocketgan.distill import distill, load_teacher
from pocketgan.errors import ModelLoadError, UsageError


def test_onnx_black_box_teacher_distills(tiny_config, tmp_path):
    path = tmp_path / "teacher.onnx"
    write_onnx_teacher(path)
    teacher = load_teacher(str(path))
    assert not teacher.has_features and len(teacher.hash) == 64
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    y = teacher(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    result = distill(tiny_config(teacher=str(path), steps=8, eval_every=8))
    assert result.steps == 8 and result.best_checkpoint.exists()
    with pytest.raises(UsageError, match="torch teacher"):
        with teacher.feature_taps(["h"]):
            pass


def test_module_factory_teacher_with_weights_distills(tiny_config, tmp_path):
    weights = tmp_path / "teacher_weights.pt"
    model = tiny_teacher(seed=7)
    torch.save(model.state_dict(), weights)
    teacher = load_teacher("distill_nets:tiny_teacher", str(weights))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(teacher(x), model(x).detach())
    assert teacher.hash != load_teacher("distill_nets:tiny_teacher").hash
    result = distill(tiny_config(teacher_weights=str(weights), steps=8, eval_every=8))
    assert result.steps == 8


def test_teacher_hash_is_stable_and_tracks_weights():
    first, second = load_teacher("distill_nets:tiny_teacher"), load_teacher("distill_nets:tiny_teacher")
    assert first.hash == second.hash
    with torch.no_grad():
        second.module.grade.bias.add_(1.0)
    from pocketgan.models.resolve import state_dict_sha256

    assert state_dict_sha256(first.module) != state_dict_sha256(second.module)


def test_exported_program_teacher(tmp_path):
    model = tiny_teacher().eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    path = tmp_path / "teacher.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(path))
    teacher = load_teacher(str(path))
    torch.testing.assert_close(teacher(x), model(x).detach())


def test_feature_taps_capture_named_layers():
    teacher = load_teacher("distill_nets:tiny_teacher")
    with teacher.feature_taps(["grade"]) as features:
        teacher(torch.zeros(1, 3, 8, 8))
    assert features["grade"].shape == (1, 8, 8, 8)
    with pytest.raises(UsageError, match="no layer"):
        with teacher.feature_taps(["nope"]):
            pass


def test_teacher_checkpoint_that_would_run_code_is_refused(tmp_path, malicious_checkpoint):
    marker = malicious_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(ModelLoadError, match="refused"):
        load_teacher(str(tmp_path / "evil.pt"))
    weights = tmp_path / "evil_weights.pt"
    malicious_checkpoint(weights)
    with pytest.raises(ModelLoadError, match="refused"):
        load_teacher("distill_nets:tiny_teacher", str(weights))
    assert not marker.exists()


def test_missing_teacher_files_are_usage_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="no such"):
        load_teacher(str(tmp_path / "absent.onnx"))
    with pytest.raises(UsageError):
        load_teacher("no_such_thing")
