"""Model output back to the photo: the probability map resized and thresholded, and the overlay.

Shared by `egeunet predict`, the golden vectors and (re-implemented and tested against them) the
Android and browser demos.
"""
from __future__ import annotations

import cv2
import numpy as np

TINT = np.array([255, 40, 40], np.float32)  # lesion tint (RGB)
TINT_ALPHA = 0.35
CONTOUR = (255, 230, 0)  # lesion outline (RGB)


def mask_at_size(prob: np.ndarray, height: int, width: int, threshold: float) -> np.ndarray:
    """Probability map (S x S) resized bilinearly to the image size, then thresholded to a uint8 0/255 mask."""
    full = cv2.resize(prob.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.where(full >= threshold, 255, 0).astype(np.uint8)


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The RGB image with the lesion tinted and its outline drawn (line width grows with the image)."""
    out = image.astype(np.float32)
    inside = mask > 0
    out[inside] = (1 - TINT_ALPHA) * out[inside] + TINT_ALPHA * TINT
    out = out.round().astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, CONTOUR, thickness=max(1, round(max(mask.shape) / 300)))
    return out
