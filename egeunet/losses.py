"""The paper's training loss: BCE + Dice per output, and the deep-supervision sum over the heads.

Computed on logits: BCE-with-logits and a sigmoid inside Dice give the same values as the authors'
sigmoid + BCELoss, without the log(0) clamping of probabilities near 0 or 1.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

# Deep-supervision weights of the heads from H/2 down to H/32 (the paper's 0.5 ... 0.1).
HEAD_WEIGHTS = (0.5, 0.4, 0.3, 0.2, 0.1)
DICE_SMOOTH = 1.0


def dice_loss(logit: torch.Tensor, target: torch.Tensor, smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """1 - Dice of sigmoid(logit) vs target, computed per sample (smooth 1) then averaged over the batch."""
    prob = torch.sigmoid(logit.float()).flatten(1)
    target = target.float().flatten(1)
    score = (2 * (prob * target).sum(1) + smooth) / (prob.sum(1) + target.sum(1) + smooth)
    return 1 - score.mean()


def bce_dice_loss(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE (mean over every pixel of the batch) + Dice loss, for one N x 1 x H x W output."""
    bce = F.binary_cross_entropy_with_logits(logit.float(), target.float())
    return bce + dice_loss(logit, target)


def deep_supervision_loss(final: torch.Tensor, heads: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Final output loss + 0.5, 0.4, 0.3, 0.2, 0.1 x the head losses from H/2 down to H/32.

    ``heads`` is ``forward_logits``' list, coarsest (H/32) first, so its weights are HEAD_WEIGHTS
    reversed; a variant without heads (empty list) trains on the final loss only.
    """
    if heads and len(heads) != len(HEAD_WEIGHTS):
        raise ValueError(f"expected {len(HEAD_WEIGHTS)} deep-supervision outputs, got {len(heads)}")
    total = bce_dice_loss(final, target)
    for weight, head in zip(reversed(HEAD_WEIGHTS), heads):
        total = total + weight * bce_dice_loss(head, target)
    return total
