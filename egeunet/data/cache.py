"""Decode a dataset once into uint8 arrays at the training size, validating every file on the way.

The cache folder holds `images.npy` (N x S x S x 3 RGB, bilinear resize, aspect not kept),
`masks.npy` (N x S x S, 0..255, nearest-neighbour resize so no new grey levels appear) and
`meta.json`; it is keyed by a hash of the file paths, sizes, modification times and S, so a changed
dataset gets a fresh cache, and it is written atomically. Arrays are opened with mmap, so many
epochs cost no decoding and little memory.

Bad files (corrupt or truncated JPEG/PNG, 16-bit or RGBA image, mask of another size than its image,
image without a mask) are collected while building: an EGEUNetError names the first and counts them
all, or with `skip_bad=True` they are left out and counted in one warning.

Order of operations: the paper's contract min-max stretches the original image, then resizes;
batches from this cache stretch after the resize (as `egeunet.preprocess` does for deployment).
The two differ only where the resize drops the single darkest or brightest pixel.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from egeunet.atomic import atomic_folder, write_bytes_atomic
from egeunet.data.imageio import read_image, read_mask
from egeunet.data.layouts import Sample
from egeunet.errors import EGEUNetError
from egeunet.progress import progress

CACHE_FORMAT = 1


@dataclass(frozen=True)
class CachedSplit:
    """Decoded samples: `images` N x S x S x 3 and `masks` N x S x S, uint8 memory maps, and their ids."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    folder: Path

    def __len__(self) -> int:
        return len(self.ids)


def default_cache_dir() -> Path:
    """$EGEUNET_CACHE, else ~/.cache/egeunet: where decoded datasets are kept."""
    return Path(os.environ.get("EGEUNET_CACHE", Path.home() / ".cache" / "egeunet"))


def cache_setting(cache_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The cache folder and the setting it comes from (--cache-dir, $EGEUNET_CACHE or the default), for messages."""
    if cache_dir:
        return Path(cache_dir), "--cache-dir"
    return default_cache_dir(), "$EGEUNET_CACHE" if "EGEUNET_CACHE" in os.environ else "the default cache folder"


def open_cache(
    samples: Sequence[Sample],
    size: int = 256,
    cache_dir: str | os.PathLike | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
) -> CachedSplit:
    """Open the cache of `samples` at `size` x `size`, building it first (with progress) if absent or damaged."""
    if not samples:
        raise EGEUNetError("no samples to cache")
    root, setting = cache_setting(cache_dir)
    folder = root / f"{size}px-{len(samples)}-{_key(samples, size)}"
    try:
        cached = _load(folder, size)
    except EGEUNetError as exc:
        warnings.warn(f"{exc}; rebuilding the cache", stacklevel=2)
        _discard(folder)
        cached = None
    if cached is None:
        try:
            _build(samples, size, folder, workers or min(8, os.cpu_count() or 1))
        except OSError as exc:
            if not (folder / "meta.json").is_file():  # not another process finishing the same cache first
                reason = "a file is in the way" if _file_on_path(folder) else exc.strerror or str(exc)
                raise EGEUNetError(f"{setting} {root}: cannot write the decoded-image cache there ({reason}); "
                                   f"point {setting} at a writable folder") from None
        cached = _load(folder, size)
    meta, images, masks = cached
    bad = meta["bad"]
    if bad and not skip_bad:
        raise EGEUNetError(f"{bad[0]} (1 of {len(bad)} bad files of {len(samples)}; --skip-bad skips them)")
    if bad:
        warnings.warn(f"skipped {len(bad)} bad files of {len(samples)}; first: {bad[0]}", stacklevel=2)
    if not meta["ids"]:
        raise EGEUNetError(f"none of the {len(samples)} images is usable; first problem: {bad[0]}")
    return CachedSplit(ids=meta["ids"], images=images, masks=masks, folder=folder)


def _load(folder: Path, size: int) -> tuple[dict, np.ndarray | None, np.ndarray | None] | None:
    """meta.json and the memory-mapped arrays of a built cache; None when not built, EGEUNetError when damaged."""
    if not (folder / "meta.json").is_file():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        n = len(meta["ids"]), len(meta["bad"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EGEUNetError(f"{folder / 'meta.json'}: damaged cache file ({type(exc).__name__})") from None
    if not meta["ids"]:  # every file was bad: there are no rows to map
        return meta, None, None
    arrays = []
    for name, shape in (("images.npy", (n[0], size, size, 3)), ("masks.npy", (n[0], size, size))):
        try:
            array = np.load(folder / name, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise EGEUNetError(f"{folder / name}: damaged cache file ({str(exc)[:80]})") from None
        if array.shape != shape or array.dtype != np.uint8:
            raise EGEUNetError(f"{folder / name}: damaged cache file (holds {array.dtype} {array.shape}, "
                               f"expected uint8 {shape})")
        arrays.append(array)
    return meta, *arrays


def _file_on_path(path: Path) -> bool:
    """Whether ``path`` or one of its parents is an existing file (so no folder can be made there)."""
    return any(os.path.exists(p) and not os.path.isdir(p) for p in (path, *path.parents))


def _discard(folder: Path) -> None:
    """Move a damaged cache out of the way (one rename, so a concurrent reader never sees it half deleted)."""
    aside = folder.with_name(f".{folder.name}.damaged-{os.getpid()}")
    try:
        os.replace(folder, aside)
    except FileNotFoundError:  # another process discarded it first
        return
    shutil.rmtree(aside, ignore_errors=True)


def load_pair(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one sample strictly, and resize image (bilinear) and mask (nearest) to size x size."""
    if sample.mask is None:
        raise EGEUNetError(f"{sample.image}: image without a mask")
    image = read_image(sample.image, strict=True)
    mask = read_mask(sample.mask, strict=True)
    if mask.shape != image.shape[:2]:
        (h, w), (mh, mw) = image.shape[:2], mask.shape
        raise EGEUNetError(f"{sample.mask}: mask is {mw}x{mh} but its image {sample.image.name} is {w}x{h}")
    return (
        cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR),
        cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST),
    )


def _key(samples: Sequence[Sample], size: int) -> str:
    """A hash of what the cache content depends on: format, size, and each file's path, size and mtime."""
    entries = [[CACHE_FORMAT, size]]
    for sample in samples:
        entries.append([sample.id, *_stat(sample.image), *_stat(sample.mask)])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:20]


def _stat(path: Path | None) -> list:
    """[absolute path, size, mtime in ns] of a file, with None for what is missing."""
    if path is None:
        return [None, None, None]
    try:
        st = path.stat()
    except OSError:
        return [str(path.absolute()), None, None]
    return [str(path.absolute()), st.st_size, st.st_mtime_ns]


def _build(samples: Sequence[Sample], size: int, folder: Path, workers: int) -> None:
    """Decode every sample on a thread pool into .npy files in a temporary folder, then rename it to `folder`."""
    n = len(samples)
    problems: list[str | None] = [None] * n
    with atomic_folder(folder) as tmp:
        images = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.uint8, (n, size, size, 3))
        masks = np.lib.format.open_memmap(tmp / "masks.npy", "w+", np.uint8, (n, size, size))

        def decode(i: int) -> None:
            try:
                images[i], masks[i] = load_pair(samples[i], size)
            except EGEUNetError as exc:
                problems[i] = str(exc)

        with ThreadPoolExecutor(workers) as pool:
            work = pool.map(decode, range(n))
            for _ in progress(work, total=n, desc=f"caching {n} images at {size}px", unit="img"):
                pass
        good = [i for i in range(n) if problems[i] is None]
        if good and len(good) < n:
            _keep_rows(tmp, "images.npy", images, good)
            _keep_rows(tmp, "masks.npy", masks, good)
        images.flush()
        masks.flush()
        del images, masks
        meta = {"ids": [samples[i].id for i in good], "bad": [p for p in problems if p is not None]}
        write_bytes_atomic(tmp / "meta.json", json.dumps(meta).encode())


def _keep_rows(folder: Path, name: str, array: np.ndarray, rows: list[int]) -> None:
    """Rewrite `folder/name` with only `rows` of `array` (bad samples dropped)."""
    kept = np.lib.format.open_memmap(folder / f"kept-{name}", "w+", np.uint8, (len(rows), *array.shape[1:]))
    for start in range(0, len(rows), 256):
        kept[start : start + 256] = array[rows[start : start + 256]]
    kept.flush()
    del kept
    os.replace(folder / f"kept-{name}", folder / name)
