"""What a run trains, built from its config: the student, the feature adapters, the discriminator.

Example: python -c "from distill.config import DistillConfig; from distill.parts import build_student; print(build_student(DistillConfig(), 'cpu'))"
"""

from __future__ import annotations

import torch

from pocketgan.checkpoint import load_checkpoint
from pocketgan.distill.config import DistillConfig
from pocketgan.distill.losses import FeatureAdapters, feature_channels
from pocketgan.errors import UsageError
from pocketgan.models import available, build
from pocketgan.models.teacher import Teacher, find_module


def load_student_weights(student: torch.nn.Module, payload: dict, source: str, config: DistillConfig) -> None:
    try:
        student.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise UsageError(
            f"{source}: weights do not fit {config.student} {config.student_build_kwargs()}: "
            f"{str(exc).splitlines()[0]}"
        ) from None


def build_student(config: DistillConfig, device: torch.device | str) -> torch.nn.Module:
    """The registered student (optionally initialised from `init_checkpoint`), on `device`."""
    if config.student not in available("student"):
        raise UsageError(f"unknown student {config.student!r}; students: {', '.join(available('student'))}")
    try:
        student = build(config.student, **config.student_build_kwargs())
    except TypeError as exc:
        raise UsageError(f"student {config.student!r}: {exc}") from None
    if config.init_checkpoint:
        payload = load_checkpoint(config.init_checkpoint)
        load_student_weights(student, payload, config.init_checkpoint, config)
    return student.to(device)


def teacher_features(teacher: Teacher, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    with teacher.feature_taps(layers) as features:
        teacher(x)
        return dict(features)


def student_forward(
    student: torch.nn.Module,
    x: torch.Tensor,
    layers: list[str],
    train: bool = True,
    inputs: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The student's output and the outputs of its named layers (forward hooks, removed afterwards).
    `inputs`: more keyword inputs of the student (thumb, size)."""
    features: dict[str, torch.Tensor] = {}
    handles = [
        find_module(student, name, "student").register_forward_hook(
            lambda module, inputs, output, name=name: features.__setitem__(name, output)
        )
        for name in layers
    ]
    try:
        student.train(train)
        with torch.set_grad_enabled(train):
            output = student(x, **(inputs or {}))
    finally:
        for handle in handles:
            handle.remove()
    return output, features


def build_adapters(
    config: DistillConfig, teacher: Teacher, student: torch.nn.Module, device: torch.device
) -> FeatureAdapters | None:
    """1x1 adapters sized by one probe pass through both networks; None when feature_weight is 0."""
    if config.feature_weight <= 0:
        return None
    pairs = list(config.feature_layers)
    side = min(64, config.size)
    probe = torch.zeros(1, 3, side, side, device=device)
    teacher_taps = teacher_features(teacher, probe, [t for t, _ in pairs])
    student_taps = student_forward(student, probe, [s for _, s in pairs], train=False)[1]
    channels = feature_channels(student_taps, "student"), feature_channels(teacher_taps, "teacher")
    return FeatureAdapters(pairs, *channels).to(device)


def build_discriminator(config: DistillConfig, device: torch.device):
    """(PatchGAN, its Adam optimiser), or (None, None) when adversarial_weight is 0."""
    if config.adversarial_weight <= 0:
        return None, None
    discriminator = build(config.discriminator, width=config.discriminator_width).to(device)
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=config.discriminator_lr, betas=(0.5, 0.999))
    return discriminator, optimizer
