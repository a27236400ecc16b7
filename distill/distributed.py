"""Data parallelism under `torchrun`: process group from the environment, gradient averaging, rank 0 writes.

Gradients are averaged across ranks after each backward pass (one flat all-reduce) and BatchNorm buffers
are broadcast from rank 0 before each step: the same arithmetic as `DistributedDataParallel`, kept explicit
so the feature adapters and the discriminator take part without wrapper bookkeeping.

Example: torchrun --nproc_per_node=2 -m pocketgan distill --preset quick --steps 20 --out runs/ddp
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pocketgan.errors import UsageError

log = logging.getLogger(__name__)


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    def average_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        """All-reduce and average the gradients of `parameters` (missing grads count as zero)."""
        if not self.enabled:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for parameter, grad in zip(parameters, grads, strict=True):
            n = grad.numel()
            parameter.grad = flat[offset : offset + n].view_as(parameter).clone()
            offset += n

    def all_true(self, flag: bool) -> bool:
        """True only if `flag` is true on every rank."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return bool(tensor.item() > 0.5)

    def average_scalars(self, values: dict[str, float]) -> dict[str, float]:
        """The mean of each named number across ranks (every rank must pass the same names)."""
        if not self.enabled or not values:
            return values
        names = sorted(values)
        tensor = torch.tensor([float(values[n]) for n in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return dict(zip(names, (tensor / self.world_size).tolist(), strict=True))

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        if self.enabled:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine (use --device cpu)")
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def context_from_env(requested_device: str) -> DistributedContext:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if world_size <= 1:
        return DistributedContext(device=device)
    owns_group = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        owns_group = True
    log.info("rank %d of %d on %s (%s)", rank, world_size, device, dist.get_backend())
    return DistributedContext(rank=rank, world_size=world_size, device=device, owns_group=owns_group)
