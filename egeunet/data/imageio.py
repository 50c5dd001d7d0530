"""Read images and masks into uint8 RGB / grayscale arrays with one-line errors; write PNG/JPEG atomically.

Policy for unusual files (applied the same way to images and masks):
- grayscale images are replicated to 3 channels; colour masks are converted to grayscale;
- an alpha channel is dropped (not composited) and 16-bit values are scaled to 8 bits (value >> 8),
  unless `strict=True`, where both are errors: dataset validation uses strict mode, so a 16-bit or
  RGBA training file is reported as bad, while prediction on a user's picture converts it;
- a JPEG without its end-of-image marker (FF D9) or a PNG without its IEND chunk is "truncated",
  even when the decoder would return a partly grey picture;
- EXIF orientation is ignored: pixels are used as stored, so an image and its mask stay aligned.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from egeunet.atomic import write_bytes_atomic
from egeunet.errors import EGEUNetError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})

_JPEG_MAGIC = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


def is_image_file(path: Path) -> bool:
    """True for a file whose extension is one this package reads (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | os.PathLike, strict: bool = False) -> np.ndarray:
    """Read an image as a uint8 H x W x 3 RGB array (see the module docstring for odd files)."""
    path = Path(path)
    array = _decode(path)
    array = _to_8bit(path, array, strict)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    channels = array.shape[2]
    if channels == 4:
        if strict:
            raise EGEUNetError(f"{path}: RGBA image (has an alpha channel); save it as RGB")
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    if channels == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if channels == 1:
        return cv2.cvtColor(array[:, :, 0], cv2.COLOR_GRAY2RGB)
    raise EGEUNetError(f"{path}: unsupported image with {channels} channels")


def read_mask(path: str | os.PathLike, strict: bool = False) -> np.ndarray:
    """Read a mask as uint8 H x W in 0..255; a mask stored as 0/1 is scaled to 0/255.

    Scaling 0/1 masks keeps the downstream rule (mask / 255 >= 0.5) from turning them empty.
    """
    path = Path(path)
    array = _to_8bit(path, _decode(path), strict)
    if array.ndim == 3:
        channels = array.shape[2]
        if channels == 4 and strict:
            raise EGEUNetError(f"{path}: RGBA mask (has an alpha channel); save it as grayscale")
        if channels in (3, 4):
            array = cv2.cvtColor(array[:, :, :3], cv2.COLOR_BGR2GRAY)
        elif channels == 1:
            array = array[:, :, 0]
        else:
            raise EGEUNetError(f"{path}: unsupported mask with {channels} channels")
    if array.max() == 1:
        array = array * np.uint8(255)
    return np.ascontiguousarray(array)


def write_png_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 H x W mask or H x W x 3 RGB image as PNG, atomically."""
    _write_atomic(Path(path), ".png", array, [])


def write_jpeg_atomic(path: str | os.PathLike, array: np.ndarray, quality: int = 95) -> None:
    """Write a uint8 H x W x 3 RGB image as JPEG at `quality`, atomically."""
    _write_atomic(Path(path), ".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])


def _write_atomic(path: Path, ext: str, array: np.ndarray, params: list[int]) -> None:
    """Encode `array` (RGB or grayscale uint8) with OpenCV and write it atomically."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 H x W or H x W x 3 array, got {array.dtype} {array.shape}")
    bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, encoded = cv2.imencode(ext, bgr, params)
    if not ok:
        raise EGEUNetError(f"{path}: OpenCV could not encode the image")
    write_bytes_atomic(path, encoded.tobytes())


def _decode(path: Path) -> np.ndarray:
    """Read and decode a file with all its channels and bit depth, checking for truncation."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        allowed = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise EGEUNetError(f"{path}: unsupported extension {path.suffix!r} (use one of {allowed})")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EGEUNetError(f"{path}: file not found") from None
    except OSError as exc:
        raise EGEUNetError(f"{path}: cannot read ({exc.strerror})") from None
    if data.startswith(_JPEG_MAGIC) and not data.rstrip(b"\x00").endswith(_JPEG_EOI):
        raise EGEUNetError(f"{path}: truncated JPEG (no end-of-image marker)")
    if data.startswith(_PNG_MAGIC) and not data.rstrip(b"\x00").endswith(_PNG_IEND):
        raise EGEUNetError(f"{path}: truncated PNG (no IEND chunk)")
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if array is None or array.size == 0:
        raise EGEUNetError(f"{path}: corrupt or unreadable image (OpenCV cannot decode it)")
    return array


def _to_8bit(path: Path, array: np.ndarray, strict: bool) -> np.ndarray:
    """Return `array` as uint8: 16-bit values are shifted right by 8 (an error when strict)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        if strict:
            raise EGEUNetError(f"{path}: 16-bit image; save it with 8 bits per channel")
        return (array >> 8).astype(np.uint8)
    raise EGEUNetError(f"{path}: unsupported pixel type {array.dtype} (expected 8-bit)")
