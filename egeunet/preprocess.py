"""The one preprocessing contract every runtime reproduces (PyTorch, ONNX, TFLite, CoreML, Android, web).

resize to size x size (bilinear, half-pixel centres, aspect not kept) -> per-image min-max stretch
over all channels to [0, 255] -> float32 N x 3 x size x size.

The authors stretch before resizing; egeunet resizes first so an app (or a graph with baked
preprocessing) can work on the small image. Bilinear resizing is an affine combination of pixels,
so the two orders differ only where resizing drops the single darkest or brightest pixel.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from egeunet.errors import EGEUNetError


def minmax_stretch(x: torch.Tensor) -> torch.Tensor:
    """Per-image min-max over channels, height and width to [0, 255]; a constant image becomes 0.

    ``x`` is float N x C x H x W. Shared by ``preprocess`` and the training pipeline.
    """
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
    x = torch.from_numpy(resized).permute(0, 3, 1, 2)
    return minmax_stretch(x).contiguous().numpy()
