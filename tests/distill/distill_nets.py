"""Tiny deterministic teachers for the distillation tests (importable as `distill_nets:tiny_teacher`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn


class TinyTeacher(nn.Module):
    """A colour grade plus a little local texture: 1x1 conv, 3x3 conv, tanh. (N,3,H,W) in [-1,1]."""

    def __init__(self, hidden: int = 8):
        super().__init__()
        self.grade = nn.Conv2d(3, hidden, 1)
        self.texture = nn.Conv2d(hidden, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(0.8 * x + 0.3 * self.texture(torch.relu(self.grade(x))))


def tiny_teacher(hidden: int = 8, seed: int = 1234) -> TinyTeacher:
    """Weights drawn from a private generator, so the factory gives the same teacher every time."""
    generator = torch.Generator().manual_seed(seed)
    model = TinyTeacher(hidden)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model


def gated_teacher() -> TinyTeacher:
    """tiny_teacher, built only once the file $TEACHER_GATE exists: a run that holds its folder until told."""
    gate = Path(os.environ["TEACHER_GATE"])
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return tiny_teacher()


def write_onnx_teacher(path) -> None:
    """A black-box ONNX teacher (1x1 colour-mixing conv + tanh, dynamic batch) built with onnx.helper."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.array([[0.9, 0.1, 0.0], [0.05, 0.85, 0.1], [0.0, 0.2, 0.7]], np.float32).reshape(3, 3, 1, 1)
    bias = np.array([0.05, 0.0, -0.08], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["h"]), helper.make_node("Tanh", ["h"], ["y"])],
        "tiny_onnx_teacher",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
