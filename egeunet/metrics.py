"""Segmentation metrics with the paper's protocol, on numpy arrays or torch tensors.

Protocol: predictions and targets are thresholded at 0.5 (a uint8 mask in 0..255 counts as
mask / 255, so 128 and up is foreground) and ONE confusion matrix is pooled over every pixel of
every image. "mIoU" is the foreground IoU TP / (TP + FP + FN), as the paper reports it.
A ratio whose denominator is 0 (e.g. IoU of an empty prediction on an empty mask) is defined as
1.0: nothing to find and nothing wrongly found.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

THRESHOLD = 0.5
WORST = 10


def _ratio(num: float, den: float) -> float:
    """num / den with 0 / 0 defined as 1.0 (see the module docstring)."""
    return float(num) / float(den) if den else 1.0


def binarize(x: Any, threshold: float = THRESHOLD) -> Any:
    """Boolean N x H x W foreground from probabilities (>= threshold), uint8 masks (/255) or bools.

    Accepts H x W, N x H x W or N x 1 x H x W, numpy or torch; returns the same library's type.
    """
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"expected one channel, got shape {tuple(x.shape)}")
        x = x[:, 0]
    elif x.ndim == 2:
        x = x[None]
    elif x.ndim != 3:
        raise ValueError(f"expected H x W, N x H x W or N x 1 x H x W, got shape {tuple(x.shape)}")
    dtype = str(x.dtype).replace("torch.", "")
    if dtype == "bool":
        return x
    if dtype == "uint8":
        return x >= threshold * 255
    return x >= threshold


def image_counts(pred: Any, target: Any, threshold: float = THRESHOLD) -> np.ndarray:
    """Per-image confusion counts, int64 N x 4 columns (TP, FP, FN, TN); numpy or torch inputs."""
    p, t = binarize(pred, threshold), binarize(target, threshold)
    if type(p) is not type(t):  # one torch tensor, one numpy array: count in torch
        import torch

        p, t = (torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in (p, t))
        t = t.to(p.device)
    if tuple(p.shape) != tuple(t.shape):
        raise ValueError(f"prediction {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    counts = [(p & t), (p & ~t), (~p & t), (~p & ~t)]
    rows = [c.sum((1, 2)) for c in counts]
    if not isinstance(p, np.ndarray):
        rows = [r.cpu().numpy() for r in rows]
    return np.stack(rows, axis=1).astype(np.int64)


def scores(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """The paper's five metrics from one confusion matrix, as fractions."""
    return {
        "miou": _ratio(tp, tp + fp + fn),
        "dsc": _ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
    }


def _mean(values: list[float]) -> float:
    """Mean of a list, NaN for no images."""
    return float(np.mean(values)) if values else float("nan")


class SegmentationMeter:
    """Accumulates the pooled confusion matrix and per-image IoU/Dice over batches.

    ``update(prob, target, ids)`` per batch, then ``compute()`` for the pooled metrics, the per-image
    means and the worst images by IoU.
    """

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self.ids: list[str] = []
        self.counts: list[np.ndarray] = []

    def update(self, prob: Any, target: Any, ids: Sequence[str] | None = None) -> None:
        """Add a batch of predictions (probabilities) and targets (0/1 floats or uint8 masks)."""
        counts = image_counts(prob, target, self.threshold)
        if ids is None:
            ids = [str(len(self.ids) + i) for i in range(len(counts))]
        if len(ids) != len(counts):
            raise ValueError(f"{len(ids)} ids for {len(counts)} images")
        self.ids.extend(ids)
        self.counts.append(counts)

    def compute(self, worst: int = WORST) -> dict[str, Any]:
        """Pooled miou/dsc/accuracy/sensitivity/specificity, per-image means, and the ``worst`` images."""
        counts = np.concatenate(self.counts) if self.counts else np.zeros((0, 4), np.int64)
        tp, fp, fn, tn = (int(v) for v in counts.sum(0))
        per_image = [
            {"id": i, "iou": _ratio(c[0], c[0] + c[1] + c[2]), "dice": _ratio(2 * c[0], 2 * c[0] + c[1] + c[2])}
            for i, c in zip(self.ids, counts)
        ]
        return {
            **scores(tp, fp, fn, tn),
            "images": len(per_image),
            "pixels": tp + fp + fn + tn,
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
            "image_iou_mean": _mean([r["iou"] for r in per_image]),
            "image_dice_mean": _mean([r["dice"] for r in per_image]),
            "worst": sorted(per_image, key=lambda r: (r["iou"], r["id"]))[:worst],
        }
