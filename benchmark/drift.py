"""How far an artifact's output is from the fp32 PyTorch model's, and from the ground truth.

Agreement is the share of pixels whose 0.5-threshold decision equals PyTorch's; |Δprob| is the
absolute difference of foreground probabilities. mIoU and DSC changes are in percentage points.
Gate on agreement and mIoU change, not on max |Δprob|: one boundary pixel of a confident model can
flip from 0.49 to 0.51, so max |Δprob| is near 1 even when the masks are nearly identical.
"""
from __future__ import annotations

import numpy as np

GT_KEYS = ("miou", "dsc", "accuracy", "sensitivity", "specificity", "image_iou_mean")


def ground_truth_metrics(probs: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """The paper's metrics (one confusion matrix pooled over all pixels, threshold 0.5) as fractions."""
    from egeunet.metrics import SegmentationMeter

    meter = SegmentationMeter()
    meter.update(probs, masks)
    result = meter.compute()
    return {key: result[key] for key in GT_KEYS}


def drift(reference: np.ndarray, probs: np.ndarray) -> dict:
    """Agreement and |Δprob| of ``probs`` against ``reference`` (both N x S x S); per-image agreement too."""
    from egeunet.metrics import image_counts, mask_agreement

    pooled = mask_agreement(probs, reference)
    counts = image_counts(probs, reference)
    return {"agreement": pooled["agreement"], "iou_vs_reference": pooled["iou"],
            "max_abs_dprob": pooled["max_abs_diff"], "mean_abs_dprob": pooled["mean_abs_diff"],
            "per_image_agreement": (counts[:, 0] + counts[:, 3]) / counts.sum(1)}


def compare(reference: np.ndarray | None, probs: np.ndarray, masks: np.ndarray | None,
            reference_metrics: dict | None) -> dict:
    """Everything one artifact row needs: ground-truth metrics, drift, Δ mIoU and Δ DSC (points) versus PyTorch."""
    out: dict = {}
    if masks is not None:
        out["metrics"] = ground_truth_metrics(probs, masks)
        if reference_metrics:
            out["delta_miou_points"] = 100 * (out["metrics"]["miou"] - reference_metrics["miou"])
            out["delta_dsc_points"] = 100 * (out["metrics"]["dsc"] - reference_metrics["dsc"])
    if reference is not None:
        out.update(drift(reference, probs))
    return out
