"""The accuracy layer: per-image counts, one comparison with explicit units, bootstrap intervals, one gate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from egeunet.accuracy import Gate, compare, truth_metrics


def test_comparison_pools_per_image_counts_numpy_or_torch():
    a = np.array([[[0.9, 0.1], [0.6, 0.2]]], np.float32)
    b = torch.tensor([[[0.8, 0.1], [0.4, 0.2]]])
    c = compare(a, b.numpy())
    assert c.images == 1 and c.agreement == pytest.approx(3 / 4) and c.iou_vs_reference == pytest.approx(1 / 2)
    assert c.max_abs_dprob == pytest.approx(0.2, abs=1e-6) and c.mean_abs_dprob == pytest.approx(0.3 / 4, abs=1e-6)
    assert c.iou_drop_points is None  # no truth given
    with_truth = compare(a, b.numpy(), b.numpy() >= 0.5)
    assert with_truth.iou_drop_points == pytest.approx(100 * (1.0 - 0.5))
    assert with_truth.truth_scores("reference")["miou"] == 1.0


def test_bootstrap_interval_brackets_the_value_and_narrows_with_more_images():
    rng = np.random.default_rng(1)

    def comparison(n: int):
        reference = rng.random((n, 24, 24))
        probs = reference.copy()
        flips = rng.random((n, 24, 24)) < rng.uniform(0.0, 0.04, (n, 1, 1))  # each image its own drift
        probs[flips] = 1 - probs[flips]
        return compare(probs, reference, reference >= 0.5)

    few, many = comparison(8), comparison(128)
    for c in (few, many):
        for metric in ("agreement", "iou_drop_points"):
            lo, hi = c.interval(metric)
            assert lo <= getattr(c, metric) <= hi
    width = lambda c: np.diff(c.interval("agreement"))[0]  # noqa: E731
    assert width(many) < width(few) / 2
    assert few.interval("agreement") == few.interval("agreement")  # seeded: the same numbers every run


def test_gate_firmness_and_missing_numbers():
    rng = np.random.default_rng(2)
    reference = rng.random((40, 16, 16))
    probs = reference.copy()
    probs[:20, 0, :3] = 1 - probs[:20, 0, :3]  # half the images lose 3 of 256 pixels: agreement ~0.994
    c = compare(probs, reference, reference >= 0.5)
    firm = Gate(min_agreement=0.95).check(c)
    assert firm.passed and firm.firm and firm.criteria[0]["images"] == 40
    near = Gate(min_agreement=c.agreement - 1e-4).check(c)  # the limit sits inside the interval
    assert near.passed and not near.firm
    failed = Gate(min_agreement=0.999).check(c)
    assert not failed.passed and "95% interval" in failed.reasons[0] and "40 images" in failed.reasons[0]
    assert failed.firm  # the whole interval is below the limit
    low, high = c.interval("iou_drop_points")
    # one criterion fails firmly while another passes with its limit inside its interval: the failure is firm
    mixed = Gate(min_agreement=0.999, max_iou_drop_points=(low + high) / 2).check(c)
    assert not mixed.passed and [r["firm"] for r in mixed.criteria] == [True, False] and mixed.firm
    unsettled = Gate(min_agreement=c.agreement + 1e-4).check(c)  # fails, but the interval reaches above the limit
    assert not unsettled.passed and not unsettled.firm
    nan = compare(probs * np.nan, reference)
    assert not Gate(max_abs_dprob=1.0).check(nan).passed
    assert "could not be checked" in Gate(min_agreement=0.9).check(None, "no checkpoint").reasons[0]


def test_truth_metrics_match_the_paper_protocol():
    probs = np.array([[[0.9, 0.1], [0.6, 0.2]], [[0.1, 0.1], [0.1, 0.1]]])
    masks = np.array([[[1, 0], [0, 0]], [[0, 0], [0, 0]]], bool)
    m = truth_metrics(probs, masks)
    assert m["miou"] == pytest.approx(1 / 2) and m["dsc"] == pytest.approx(2 / 3)
    assert m["image_iou_mean"] == pytest.approx((1 / 2 + 1.0) / 2)  # an empty prediction on an empty mask counts 1
