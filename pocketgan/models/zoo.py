"""Pretrained weights that ship inside installed packages (found offline, never downloaded).

Example: python -c "from pocketgan.models.zoo import load_vintage; print(load_vintage())"
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch

from pocketgan.errors import ModelLoadError
from pocketgan.models.registry import build, register_pretrained
from pocketgan.torchload import load_torch_file

VINTAGE_PACKAGE = "vintagify"
VINTAGE_FILE = "vintagify/resources/G_A2B_epoch33.pth"
VINTAGE_INSTALL_HINT = "pip install --no-deps vintagify==0.1.2"


def vintage_weights_path() -> Path:
    """Path of the `vintage` teacher's state dict, found through package metadata (no module import)."""
    try:
        dist = importlib.metadata.distribution(VINTAGE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(
            f"teacher 'vintage' needs the {VINTAGE_PACKAGE} package for its weights: {VINTAGE_INSTALL_HINT}"
        ) from None
    for file in dist.files or []:
        if str(file).replace("\\", "/") == VINTAGE_FILE:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise ModelLoadError(
        f"{VINTAGE_PACKAGE} is installed but lacks {VINTAGE_FILE}; reinstall: {VINTAGE_INSTALL_HINT}"
    )


@register_pretrained("vintage", kind="teacher", weights_path=vintage_weights_path)
def load_vintage() -> torch.nn.Module:
    """The pretrained CycleGAN ResNet-9 modern->vintage generator, in eval mode."""
    model = build("cyclegan-resnet9")
    model.load_state_dict(load_torch_file(vintage_weights_path()), strict=True)
    return model.eval()
