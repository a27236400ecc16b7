"""The one way PocketGAN counts MACs and parameters: FlopCounterMode FLOPs / 2.

Example: python -c "from pocketgan.flops import count_macs; from pocketgan.models.zoo import load_vintage; print(count_macs(load_vintage(), 256))"
"""

from __future__ import annotations

import torch

MAC_METHOD = "torch.utils.flop_counter.FlopCounterMode FLOPs/2, batch 1, 3xSxS input"


def model_cost(model: torch.nn.Module, size: int) -> dict[str, int]:
    """Parameters and MACs of a torch module at size x size, counted the one PocketGAN way."""
    return {"params": int(count_params(model)), "macs": int(count_macs(model, size))}


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: torch.nn.Module, size: int) -> int:
    """Multiply-accumulates of one forward pass on a (1, 3, size, size) input."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(1, 3, size, size, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    return counter.get_total_flops() // 2
