"""One training epoch: batches from the cache, augmentation on the training device, the deep-supervision loss.

Times the wait for data (loading, stretching and augmenting a batch) against the whole epoch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from egeunet.data.augment import augment_batch
from egeunet.data.cache import CachedSplit
from egeunet.losses import deep_supervision_loss
from egeunet.progress import Progress
from egeunet.training.batches import iterate

POSTFIX_EVERY = 10  # batches between progress-bar loss updates (each one syncs the device)


class LogitsModule(nn.Module):
    """Wraps EGE-UNet so that ``forward`` returns ``forward_logits``: DDP only syncs gradients through forward."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.net.forward_logits(x)


@dataclass
class EpochStats:
    """Summed loss and counts of one epoch in this process."""

    loss_sum: float
    images: int
    seconds: float
    data_seconds: float

    @property
    def data_wait(self) -> float:
        """Fraction of the epoch spent waiting for batches."""
        return self.data_seconds / self.seconds if self.seconds else 0.0


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                cached: CachedSplit, order: np.ndarray, batch_size: int, device: torch.device,
                generator: torch.Generator, amp_dtype: torch.dtype | None = None, bar: Progress | None = None) -> EpochStats:
    """Train ``model`` (a LogitsModule, maybe DDP-wrapped) over ``order``'s rows once."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    images = 0
    data_seconds = 0.0
    fetch = start = time.perf_counter()
    for step, (_, x, y) in enumerate(iterate(cached, order, batch_size, device), 1):
        x, y = augment_batch(x, y, generator)
        data_seconds += time.perf_counter() - fetch
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            final, heads = model(x)
        loss = deep_supervision_loss(final, heads, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach() * len(x)
        images += len(x)
        if bar is not None:
            bar.update(1)
            if step % POSTFIX_EVERY == 0 or images == len(order):
                bar.set_postfix(loss=f"{loss_sum.item() / images:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        fetch = time.perf_counter()
    return EpochStats(float(loss_sum), images, time.perf_counter() - start, data_seconds)
