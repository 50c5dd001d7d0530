"""Small tensor functions shared by the training batches: the per-image min-max stretch and mask targets."""
from __future__ import annotations

import torch


def minmax_stretch(x: torch.Tensor) -> torch.Tensor:
    """Rescale each image of an N x C x H x W batch to [0, 255] over all its channels; a constant image maps to 0.

    Computes exactly (x - min) / (max - min) * 255 with min and max over C, H and W of each image.
    """
    x = x.float()
    low = x.amin(dim=(-3, -2, -1), keepdim=True)
    span = x.amax(dim=(-3, -2, -1), keepdim=True) - low
    span = torch.where(span > 0, span, torch.ones_like(span))
    return (x - low) / span * 255


def mask_targets(masks: torch.Tensor) -> torch.Tensor:
    """Binary float targets from uint8 masks in 0..255: (mask / 255 >= 0.5), as in the paper."""
    return (masks.float() / 255 >= 0.5).float()
