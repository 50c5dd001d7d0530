"""Tensor functions of the training batches: the per-image min-max stretch and binary mask targets.

`minmax_stretch` is the deployed preprocessing's own function (one implementation, in
`egeunet.preprocess`), so training on cached, already resized images matches the deployed order:
resize, then stretch.
"""
from __future__ import annotations

import torch

from egeunet.preprocess import minmax_stretch

__all__ = ["mask_targets", "minmax_stretch"]


def mask_targets(masks: torch.Tensor) -> torch.Tensor:
    """Binary float targets from uint8 masks in 0..255: (mask / 255 >= 0.5), as in the paper."""
    return (masks.float() / 255 >= 0.5).float()
