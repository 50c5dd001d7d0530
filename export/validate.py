"""Compare an artifact's probabilities with fp32 PyTorch on held-out images and apply the precision's gate.

Gates: fp32 on max |Δprob|; fp16 on mask agreement and a loose max |Δprob|; int8 on mask agreement and
pooled-IoU change (a confident model flips single boundary pixels, so max |Δ| is near 1 even when the
masks are nearly identical).
"""
from __future__ import annotations

import numpy as np

from egeunet.export.spec import Gates
from egeunet.metrics import THRESHOLD, image_counts, mask_agreement, scores


def pooled_iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Foreground IoU of one confusion matrix pooled over all pixels of all images (the paper's "mIoU")."""
    return scores(*image_counts(pred, target).sum(0))["miou"]


def compare(probs: np.ndarray, reference: np.ndarray, truth: np.ndarray | None, precision: str,
            gates: Gates) -> dict:
    """Numbers and gate verdict for artifact ``probs`` vs PyTorch ``reference`` (both N x S x S).

    ``truth``: ground-truth masks for the IoU change; without them the fp32 PyTorch masks stand in.
    """
    probs, reference = np.asarray(probs, np.float64), np.asarray(reference, np.float64)
    if probs.shape != reference.shape:
        return {"passed": False, "gate": f"output shape {list(probs.shape)} != {list(reference.shape)}"}
    target = truth if truth is not None else reference >= THRESHOLD
    drift = mask_agreement(probs, reference)
    iou_ref = pooled_iou(reference >= THRESHOLD, target)
    iou_art = pooled_iou(probs >= THRESHOLD, target)
    result = {
        "images": int(len(probs)),
        "max_abs_diff": drift["max_abs_diff"],
        "mean_abs_diff": drift["mean_abs_diff"],
        "mask_agreement": drift["agreement"],
        "iou_reference": "ground truth" if truth is not None else "fp32 PyTorch masks",
        "iou_pytorch": iou_ref,
        "iou_artifact": iou_art,
        "iou_change": abs(iou_art - iou_ref),
    }
    if precision == "int8":
        ok = result["mask_agreement"] >= gates.int8_agreement and result["iou_change"] <= gates.int8_iou_change
        gate = f"mask agreement >= {gates.int8_agreement} and IoU change <= {gates.int8_iou_change}"
    elif precision == "fp16":
        ok = result["mask_agreement"] >= gates.fp16_agreement and result["max_abs_diff"] <= gates.fp16_max_abs
        gate = f"mask agreement >= {gates.fp16_agreement} and max |dprob| <= {gates.fp16_max_abs:g}"
    else:
        ok = result["max_abs_diff"] <= gates.fp32_max_abs
        gate = f"max |dprob| <= {gates.fp32_max_abs:g}"
    finite = bool(np.isfinite(probs).all())
    return {**result, "gate": gate if finite else gate + " (artifact produced NaN/inf)", "passed": bool(ok and finite)}
