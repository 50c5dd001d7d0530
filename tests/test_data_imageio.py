"""Image and mask reading: conversion policy, strict mode, and one-line errors naming the file."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from egeunet.data.imageio import read_image, read_mask, write_jpeg_atomic, write_png_atomic
from egeunet.errors import EGEUNetError


def _gradient(h: int = 6, w: int = 8) -> np.ndarray:
    """A small RGB picture with distinct channels, so a BGR/RGB swap shows."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 1] = np.arange(w, dtype=np.uint8) * 10
    rgb[..., 2] = 30
    return rgb


def test_png_roundtrip_is_rgb(tmp_path: Path) -> None:
    rgb = _gradient()
    write_png_atomic(tmp_path / "a.png", rgb)
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out, rgb)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left behind"


def test_jpeg_roundtrip_is_close(tmp_path: Path) -> None:
    rgb = np.full((16, 16, 3), (200, 60, 30), np.uint8)
    write_jpeg_atomic(tmp_path / "a.jpg", rgb, quality=95)
    out = read_image(tmp_path / "a.jpg")
    assert np.abs(out.astype(int) - rgb).max() <= 6


def test_grayscale_image_is_replicated(tmp_path: Path) -> None:
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = read_image(tmp_path / "g.png", strict=True)
    assert out.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_dropped_alpha_or_strict_error(tmp_path: Path) -> None:
    rgb = _gradient()
    bgra = np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.full((6, 8), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)
    with pytest.raises(EGEUNetError, match=r"rgba\.png: RGBA"):
        read_image(tmp_path / "rgba.png", strict=True)


def test_16bit_scaled_or_strict_error(tmp_path: Path) -> None:
    values = (np.arange(48, dtype=np.uint16) * 1000).reshape(6, 8)
    cv2.imwrite(str(tmp_path / "deep.png"), np.dstack([values] * 3))
    out = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(out[..., 0], (values >> 8).astype(np.uint8))
    with pytest.raises(EGEUNetError, match=r"deep\.png: 16-bit"):
        read_image(tmp_path / "deep.png", strict=True)


def test_mask_values_kept_and_01_scaled(tmp_path: Path) -> None:
    mask = np.zeros((6, 8), np.uint8)
    mask[2:4, 3:6] = 255
    mask[0, 0] = 100
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)
    cv2.imwrite(str(tmp_path / "m01.png"), (mask == 255).astype(np.uint8))
    np.testing.assert_array_equal(read_mask(tmp_path / "m01.png"), np.where(mask == 255, 255, 0))


def test_colour_mask_becomes_grayscale(tmp_path: Path) -> None:
    mask = np.zeros((6, 8), np.uint8)
    mask[1:5, 2:7] = 255
    cv2.imwrite(str(tmp_path / "m.png"), np.dstack([mask] * 3))
    out = read_mask(tmp_path / "m.png", strict=True)
    assert out.shape == (6, 8)
    np.testing.assert_array_equal(out, mask)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("corrupt.jpg", b"\xff\xd8\xff\xe0 this is not a jpeg \xff\xd9", "corrupt or unreadable"),
        ("garbage.png", b"hello", "corrupt or unreadable"),
        ("empty.jpg", b"", "corrupt or unreadable"),
    ],
)
def test_corrupt_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(EGEUNetError, match=message) as info:
        read_image(tmp_path / name)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_truncated_jpeg_and_png(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for ext, label in ((".jpg", "truncated JPEG"), (".png", "truncated PNG")):
        ok, data = cv2.imencode(ext, rgb)
        path = tmp_path / f"cut{ext}"
        path.write_bytes(data.tobytes()[: len(data) * 2 // 3])
        with pytest.raises(EGEUNetError, match=label) as info:
            read_image(path)
        assert path.name in str(info.value)


def test_missing_file_and_bad_extension(tmp_path: Path) -> None:
    with pytest.raises(EGEUNetError, match=r"nothere\.png: file not found"):
        read_image(tmp_path / "nothere.png")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(EGEUNetError, match=r"notes\.txt: unsupported extension"):
        read_mask(tmp_path / "notes.txt")
