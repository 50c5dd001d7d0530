"""Paper-protocol metrics: pooled confusion matrix vs per-image scores on crafted masks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from egeunet.metrics import SegmentationMeter, image_counts, scores


def _masks():
    """Two 4x4 images: image a has TP 2, FP 1, FN 1; image b is empty in both (perfect)."""
    target = np.zeros((2, 4, 4), np.uint8)
    pred = np.zeros((2, 4, 4), np.float32)
    target[0, 0, :3] = 255
    pred[0, 0, 1:4] = 0.9
    pred[0, 1, 0] = 0.49  # below threshold
    return pred, target


def test_pooled_and_per_image_metrics():
    pred, target = _masks()
    meter = SegmentationMeter()
    meter.update(pred[:1], target[:1], ids=["a"])
    meter.update(torch.from_numpy(pred[1:]), torch.from_numpy(target[1:]), ids=["b"])
    m = meter.compute()
    assert m["confusion"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 28}
    assert m["miou"] == pytest.approx(2 / 4)
    assert m["dsc"] == pytest.approx(4 / 6)
    assert m["accuracy"] == pytest.approx(30 / 32)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(28 / 29)
    assert m["images"] == 2 and m["pixels"] == 32
    # per image: a = 0.5 IoU, b = empty vs empty = 1.0
    assert m["image_iou_mean"] == pytest.approx(0.75)
    assert m["image_dice_mean"] == pytest.approx((4 / 6 + 1) / 2)
    assert [w["id"] for w in m["worst"]] == ["a", "b"]


def test_pooling_differs_from_averaging_images():
    target = np.zeros((2, 10, 10), np.float32)
    pred = np.zeros_like(target)
    target[0, :5] = 1  # big lesion, predicted well
    pred[0, :4] = 1
    target[1, 0, 0] = 1  # one-pixel lesion, missed
    meter = SegmentationMeter()
    meter.update(pred[:, None], target[:, None])
    m = meter.compute(worst=1)
    assert m["miou"] == pytest.approx(40 / 51)
    assert m["image_iou_mean"] == pytest.approx((40 / 50 + 0) / 2)
    assert m["worst"] == [{"id": "1", "iou": 0.0, "dice": 0.0}]


def test_threshold_and_mask_scales():
    prob = np.array([[0.5, 0.4999]])
    assert image_counts(prob, np.array([[128, 127]], np.uint8)).tolist() == [[1, 0, 0, 1]]
    assert image_counts(prob, np.array([[True, False]])).tolist() == [[1, 0, 0, 1]]
    with pytest.raises(ValueError, match="differ in shape"):
        image_counts(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))


def test_empty_denominators_are_one():
    assert scores(0, 0, 0, 10) == {"miou": 1.0, "dsc": 1.0, "accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0}


