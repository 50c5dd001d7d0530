"""Multi-process training through torchrun: process-group setup, DDP wrapping and small collectives.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs in one process and
every helper here is a no-op. Backend: nccl on CUDA, gloo on CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from egeunet.errors import EGEUNetError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; ``world_size == 1`` means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and prints."""
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``--device`` (cpu, cuda, mps), with a one-line error when it is absent."""
    if name == "cuda":
        if not torch.cuda.is_available():
            raise EGEUNetError("--device cuda: CUDA is not available on this machine (use --device cpu)")
        return torch.device("cuda", local_rank)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise EGEUNetError("--device mps: Apple MPS is not available on this machine (use --device cpu)")
        return torch.device("mps")
    if name != "cpu":
        raise EGEUNetError(f"--device {name!r}: use cpu, cuda or mps")
    return torch.device("cpu")


def setup(device: str) -> tuple[DistContext, torch.device]:
    """Join the process group when launched by torchrun; returns the context and this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), resolve_device(device)
    import torch.distributed as dist

    ctx = DistContext(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    dev = resolve_device(device, ctx.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    elif dev.type == "mps":
        raise EGEUNetError("multi-process training supports --device cuda or cpu, not mps")
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=ctx.rank, world_size=world)
    return ctx, dev


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` when there are several processes, else ``model``."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op in one process)."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes (returned as is in one process)."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.all_reduce(values)
    return values


def cleanup(ctx: DistContext) -> None:
    """Leave the process group."""
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
