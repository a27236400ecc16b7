"""The run folder: config.toml, metrics.jsonl, last.pt (training state), best.pt and average.pt (students),
samples/.

Every checkpoint is plain data (tensors, numbers, strings, dicts, lists): it loads with `weights_only=True`.
RNG states are stored as uint8 tensors.

Example: python -c "from distill.runfolder import read_metrics; print(read_metrics('runs/quick')[-1])"
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketgan.checkpoint import load_checkpoint, save_checkpoint
from pocketgan.errors import ModelLoadError
from pocketgan.images import to_uint8
from pocketgan.manifest import atomic_path
from pocketgan.metrics import json_ready

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
AVERAGE_CHECKPOINT = "average.pt"
SAMPLES_DIR = "samples"
TRAINING_STATE = "pocketgan-training-state/1"


def append_metrics(run_dir: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line (non-finite numbers become strings, so every line stays valid JSON)."""
    with open(Path(run_dir) / METRICS_FILE, "a") as handle:
        handle.write(json.dumps(json_ready(record)) + "\n")
        handle.flush()


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(run_dir: str | os.PathLike, after_step: int) -> None:
    """Drop lines logged after `after_step` (by a run killed after its last checkpoint) before resuming."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line)["step"] <= after_step
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in kept))


def rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_training_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically write last.pt: a student checkpoint plus optimizer, schedule, RNG and discriminator state."""
    return save_checkpoint(path, {"kind": TRAINING_STATE, **state})


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read last.pt with `weights_only=True` (a pickled object is refused with ModelLoadError)."""
    payload = load_checkpoint(path)
    if payload.get("kind") != TRAINING_STATE or "step" not in payload:
        raise ModelLoadError(f"{path}: a student checkpoint without training state; cannot resume from it")
    return payload


def save_sample_grid(
    path: str | os.PathLike, rows: list[tuple[np.ndarray, ...]], amplify: float = 4.0
) -> None:
    """A PNG with one row per image: input | teacher | student | |student - teacher| x amplify.

    Each row holds float (3, H, W) arrays in [-1, 1]: (input, teacher, student).
    """
    from PIL import Image

    lines = []
    for inputs, teacher, student in rows:
        difference = np.clip(np.abs(student - teacher) * amplify, 0.0, 2.0) - 1.0
        tiles = [to_uint8(a.transpose(1, 2, 0)) for a in (inputs, teacher, student, difference)]
        lines.append(np.concatenate(tiles, axis=1))
    with atomic_path(path) as tmp:
        Image.fromarray(np.concatenate(lines, axis=0)).save(tmp, format="PNG")
