"""The one way PocketGAN counts MACs and parameters: FlopCounterMode FLOPs / 2.

Example: python -c "from pocketgan.flops import count_macs; from pocketgan.models.zoo import load_vintage; print(count_macs(load_vintage(), 256))"
"""

from __future__ import annotations

import torch

from pocketgan.images import CONTEXT_SIZE
from pocketgan.models.registry import has_context

MAC_METHOD = (
    "torch.utils.flop_counter.FlopCounterMode FLOPs/2, batch 1, 3xSxS input (and the 3x256x256 context "
    "thumbnail of a model that takes one, as every runtime call feeds it)"
)


def model_cost(model: torch.nn.Module, size: int) -> dict[str, int]:
    """Parameters and MACs of a torch module at size x size, counted the one PocketGAN way."""
    return {"params": int(count_params(model)), "macs": int(count_macs(model, size))}


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: torch.nn.Module, size: int, thumbnail: bool = True) -> int:
    """Multiply-accumulates of one forward pass on a (1, 3, size, size) input, with the context thumbnail
    (1, 3, CONTEXT_SIZE, CONTEXT_SIZE) for a model whose forward takes one (`thumb`): the runtime always feeds
    it, and a thumb_norm student runs its blocks on it too (0.43 GMACs of the shipped student's 1.00 at 256²).
    thumbnail=False: the image path alone (the model run on x only, its own thumbnail)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(1, 3, size, size, device=device)
    inputs = (x,)
    if thumbnail and has_context(model):
        inputs += (torch.zeros(1, 3, CONTEXT_SIZE, CONTEXT_SIZE, device=device),)
    counter = FlopCounterMode(display=False)
    with counter:
        model(*inputs)
    return counter.get_total_flops() // 2
