"""The one preprocessing contract every runtime reproduces (PyTorch, ONNX, TFLite, CoreML, Android, web).

resize to size x size (bilinear, half-pixel centres, aspect not kept) -> per-image min-max stretch
over all channels to [0, 255] -> float32 N x 3 x size x size.

The authors stretch before resizing; egeunet resizes first so an app (or a graph with baked
preprocessing) can work on the small image. Bilinear resizing is an affine combination of pixels,
so the two orders differ only where resizing drops the single darkest or brightest pixel.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from egeunet.errors import EGEUNetError

if TYPE_CHECKING:
    import torch

# The contract as stored in checkpoints and exported artifacts.
PREPROCESSING = {
    "input": "RGB image, any size",
    "resize": "bilinear (half-pixel centres) to input_size x input_size, aspect not kept",
    "stretch": "per-image min-max over all channels to [0, 255] (constant image -> 0)",
    "layout": "NCHW float32",
    "output": "sigmoid foreground probability, N x 1 x H x W",
    "threshold": 0.5,
}


def stretch_array(x: np.ndarray) -> np.ndarray:
    """Per-image min-max over channels, height and width to [0, 255] (constant image -> 0), float32 N x C x H x W.

    numpy, so runtimes other than PyTorch never load torch; ``minmax_stretch`` is the same arithmetic
    on tensors for batched training (tests check they agree bit for bit).
    """
    flat = x.reshape(len(x), -1)
    lo = flat.min(1).reshape(-1, 1, 1, 1)
    span = flat.max(1).reshape(-1, 1, 1, 1) - lo
    safe = np.where(span > 0, span, np.float32(1))
    return np.where(span > 0, (x - lo) / safe * np.float32(255), np.float32(0)).astype(np.float32)


def minmax_stretch(x: "torch.Tensor") -> "torch.Tensor":
    """``stretch_array`` for a float tensor N x C x H x W on any device (the training pipeline's batches)."""
    import torch

    flat = x.flatten(1)
    lo = flat.amin(1).view(-1, 1, 1, 1)
    span = flat.amax(1).view(-1, 1, 1, 1) - lo
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, 1.0) * 255.0, 0.0)


def to_rgb(image: np.ndarray, channel_order: str = "rgb") -> np.ndarray:
    """H x W x 3 from grayscale (H x W or H x W x 1: replicated), RGB/BGR, or RGBA/BGRA (alpha dropped).

    Any real dtype is kept as is: 16-bit images need no rescaling because the stretch is per image.
    """
    if channel_order not in ("rgb", "bgr"):
        raise EGEUNetError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise EGEUNetError(f"expected an image H x W, H x W x 1, 3 or 4, got shape {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    image = image[:, :, :3]
    return image[:, :, ::-1] if channel_order == "bgr" else image


def resize_float(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (OpenCV INTER_LINEAR, half-pixel centres) in float32; no-op at the target size."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def to_model_size(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGB resized to size x size like ``preprocess`` (bilinear, float), then rounded: what an app feeds a
    graph with baked preprocessing."""
    return np.clip(np.rint(resize_float(image, size)), 0, 255).astype(np.uint8)


def preprocess(image: np.ndarray, size: int = 256, channel_order: str = "rgb") -> np.ndarray:
    """Image(s) -> network input, float32 N x 3 x size x size in [0, 255].

    ``image``: one image (H x W grayscale, H x W x 1/3/4) or a batch N x H x W x C, any real dtype.
    OpenCV's ``cv2.imread`` gives BGR: pass ``channel_order="bgr"``.
    """
    image = np.asarray(image)
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise EGEUNetError(f"expected a numeric image array, got dtype {image.dtype}")
    batch = list(image) if image.ndim == 4 else [image]
    if not batch or min(image.shape[-3:-1] if image.ndim >= 3 else image.shape) == 0:
        raise EGEUNetError(f"empty image array of shape {image.shape}")
    resized = np.stack([resize_float(to_rgb(im, channel_order), size) for im in batch])
    return np.ascontiguousarray(stretch_array(resized.transpose(0, 3, 1, 2)))
