"""The paper's training augmentation, batched on the batch's device, identical for image and mask.

Per sample: horizontal flip (p 0.5), vertical flip (p 0.5), and rotation (p 0.5) by a fresh uniform
angle in [0, 360) degrees, nearest interpolation, zero fill. The authors' code draws one angle per
run; this draws one per sample, as the paper describes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_batch(
    images: torch.Tensor,
    masks: torch.Tensor,
    generator: torch.Generator,
    p_hflip: float = 0.5,
    p_vflip: float = 0.5,
    p_rotate: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment N x C x H x W images and N x 1 x H x W masks the same way; `generator` (CPU) makes it reproducible."""
    n, channels = images.shape[:2]
    draws = torch.rand(n, 4, generator=generator)  # always drawn, so the stream does not depend on p
    hflip, vflip, rotate = (draws[:, :3] < torch.tensor([p_hflip, p_vflip, p_rotate])).T
    angles = torch.where(rotate, draws[:, 3] * 2 * math.pi, torch.zeros(n))
    both = torch.cat([images, masks.to(images.dtype)], dim=1)
    both = torch.where(_column(hflip, both), both.flip(-1), both)
    both = torch.where(_column(vflip, both), both.flip(-2), both)
    if rotate.any():
        both = torch.where(_column(rotate, both), rotate_nearest(both, angles.to(both.device)), both)
    return both[:, :channels], both[:, channels:].to(masks.dtype)


def rotate_nearest(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each N x C x H x W sample about its centre by `angles` (radians), nearest sampling, zero fill."""
    height, width = x.shape[-2:]
    cos, sin = torch.cos(angles), torch.sin(angles)
    # Rotation in pixel units, expressed in affine_grid's [-1, 1] coordinates (non-square safe).
    theta = torch.stack(
        [
            torch.stack([cos, -sin * height / width, torch.zeros_like(cos)], dim=-1),
            torch.stack([sin * width / height, cos, torch.zeros_like(cos)], dim=-1),
        ],
        dim=1,
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _column(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample boolean flags shaped N x 1 x 1 x 1 on `like`'s device, for torch.where."""
    return flags.to(like.device).view(-1, 1, 1, 1)
