"""The student checkpoint contract shared by distill/ (writes) and export/ (reads).

A checkpoint is `torch.save` of plain data only, so it loads with `weights_only=True`:
    {"format": "pocketgan-student/1", "student": NAME, "student_kwargs": {...},
     "state_dict": {...tensors...}, "config": {...JSON-able...}, "metrics": {...}}
Training-state checkpoints (optimizer, RNG) may hold more keys; readers ignore what they do not need.

Example: python -c "from pocketgan.checkpoint import load_student; print(load_student('runs/q/best.pt'))"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pocketgan.errors import ModelLoadError
from pocketgan.manifest import atomic_path
from pocketgan.models.registry import build
from pocketgan.torchload import load_torch_file

CHECKPOINT_FORMAT = "pocketgan-student/1"


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Atomically write a checkpoint dict (temp file + rename)."""
    payload = {"format": CHECKPOINT_FORMAT, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; anything that would run code is refused."""
    payload = load_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{path}: not a PocketGAN student checkpoint (no format {CHECKPOINT_FORMAT!r})")
    for key in ("student", "student_kwargs", "state_dict"):
        if key not in payload:
            raise ModelLoadError(f"{path}: checkpoint lacks {key!r}")
    return payload


def load_student(path: str | os.PathLike) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the student generator from a checkpoint, in eval mode, with its payload."""
    payload = load_checkpoint(path)
    model = build(payload["student"], **payload["student_kwargs"])
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"{path}: weights do not fit {payload['student']}: {str(exc).splitlines()[0]}"
        ) from None
    return model.eval(), payload
