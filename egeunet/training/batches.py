"""Batches from the decoded cache: the epoch's shuffled order (sharded per process) and tensors on the device.

The order of epoch e is a permutation seeded by (seed, e), so it never depends on how the run was
started or resumed; with several processes rank r takes every world_size-th index of it.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from egeunet.data.cache import CachedSplit
from egeunet.data.tensor_ops import mask_targets
from egeunet.preprocess import minmax_stretch


def epoch_order(index: np.ndarray, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """This process's share of the epoch's permutation of ``index``; every rank gets the same count."""
    order = index[np.random.default_rng([seed, epoch]).permutation(len(index))]
    per_rank = len(order) // world_size
    return order[: per_rank * world_size][rank::world_size]


def load_batch(cached: CachedSplit, rows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Images N x 3 x S x S (float, per-image min-max to [0, 255]) and uint8 masks N x 1 x S x S on ``device``."""
    images, masks = torch.from_numpy(cached.images[rows]), torch.from_numpy(cached.masks[rows])
    if device.type == "cuda":  # pinned pages let the copy overlap the previous step's kernels
        images, masks = images.pin_memory(), masks.pin_memory()
    images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
    return minmax_stretch(images.permute(0, 3, 1, 2).float()), masks.unsqueeze(1)


def iterate(cached: CachedSplit, order: np.ndarray, batch_size: int, device: torch.device
            ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Yield (rows, images, binary float targets) for consecutive batches of ``order`` (last one may be short)."""
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        images, masks = load_batch(cached, rows, device)
        yield rows, images, mask_targets(masks)
