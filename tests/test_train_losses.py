"""The training loss against hand computations on tiny tensors."""
from __future__ import annotations

import math

import pytest
import torch

from egeunet.losses import HEAD_WEIGHTS, bce_dice_loss, deep_supervision_loss, dice_loss


def _sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_bce_dice_matches_hand_computation():
    logits = [[0.0, 2.0], [-1.0, 1.0]], [[3.0, -2.0], [0.5, -0.5]]
    targets = [[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]
    bce_terms, dice_scores = [], []
    for lg, tg in zip(logits, targets):
        s = [_sigmoid(v) for row in lg for v in row]
        t = [v for row in tg for v in row]
        bce_terms += [-(ti * math.log(si) + (1 - ti) * math.log(1 - si)) for si, ti in zip(s, t)]
        dice_scores.append((2 * sum(si * ti for si, ti in zip(s, t)) + 1) / (sum(s) + sum(t) + 1))
    expected_dice = 1 - sum(dice_scores) / 2  # per sample, then batch mean
    expected = sum(bce_terms) / len(bce_terms) + expected_dice
    logit = torch.tensor(logits).unsqueeze(1)
    target = torch.tensor(targets).unsqueeze(1)
    assert dice_loss(logit, target).item() == pytest.approx(expected_dice, rel=1e-6)
    assert bce_dice_loss(logit, target).item() == pytest.approx(expected, rel=1e-6)


def test_deep_supervision_weights_map_coarsest_head_to_point_one():
    target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    perfect = (target * 2 - 1) * 50  # BCE ~ 0, Dice loss ~ 0
    bad = torch.zeros_like(target)
    base = bce_dice_loss(perfect, target).item()
    bad_loss = bce_dice_loss(bad, target).item()
    for i in range(5):  # forward_logits order: H/32 first ... H/2 last
        heads = [bad if j == i else perfect for j in range(5)]
        total = deep_supervision_loss(perfect, heads, target).item()
        weight = HEAD_WEIGHTS[::-1][i]
        assert total == pytest.approx(base * (1 + sum(HEAD_WEIGHTS) - weight) + weight * bad_loss, rel=1e-5)
    assert HEAD_WEIGHTS[::-1][0] == 0.1 and HEAD_WEIGHTS[::-1][4] == 0.5


def test_variant_without_heads_uses_final_loss_only():
    target = torch.ones(1, 1, 2, 2)
    final = torch.zeros(1, 1, 2, 2)
    assert deep_supervision_loss(final, [], target).item() == pytest.approx(bce_dice_loss(final, target).item())
