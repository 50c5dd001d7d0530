"""Calibration and held-out images for export: uint8 RGB at the model size, never overlapping.

Images are resized once (bilinear, as ``egeunet.preprocess``) and rounded to uint8, which is what an
app with baked preprocessing feeds; for such an image ``preprocess`` is exactly cast + stretch, so
every artifact (baked or not) is compared on the same numbers.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.preprocess import preprocess, resize_float, to_model_size

DEFAULT_HELD = 32  # held-out images when no test split is known: gates on fewer decide by sampling noise
MAX_TEST_HELD = 256  # cap on a known test split used as held-out images (export time grows with it)


@dataclass(frozen=True)
class ImageSet:
    """N uint8 images N x S x S x 3, optional ground-truth masks N x S x S (bool), ids and their source."""

    images: np.ndarray
    masks: np.ndarray | None
    ids: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def sha256(self) -> str:
        """Hash of the id list (one id per line), so a manifest names the exact images used."""
        return hashlib.sha256("\n".join(self.ids).encode()).hexdigest()

    def canonical(self) -> np.ndarray:
        """The network input N x 3 x S x S float32 (``egeunet.preprocess`` of the uint8 images)."""
        return preprocess(self.images, self.images.shape[1])

    def subset(self, start: int, stop: int | None, source: str | None = None) -> "ImageSet":
        """Images ``start:stop`` (optionally with a new source description)."""
        part = slice(start, stop)
        return ImageSet(self.images[part], None if self.masks is None else self.masks[part], self.ids[part],
                        source or self.source)

    def describe(self) -> dict:
        """Manifest record: source, count, sha256 of the id list."""
        return {"source": self.source, "count": len(self), "sha256_of_ids": self.sha256}


def _mask_to_size(mask: np.ndarray, size: int) -> np.ndarray:
    return resize_float(mask.astype(np.float32) / 255.0, size) >= 0.5


def synthetic_sets(size: int, n_calib: int, n_held: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Calibration images 0..n_calib-1 and held-out images after them, from the synthetic generator."""
    from egeunet.data.synthetic import generate_sample

    def make(indices: range, role: str) -> ImageSet:
        pairs = [generate_sample(seed, i) for i in indices]
        return ImageSet(np.stack([to_model_size(im, size) for im, _ in pairs]),
                        np.stack([_mask_to_size(m, size) for _, m in pairs]),
                        tuple(f"synthetic:{seed}:{i}" for i in indices), f"synthetic sample, seed {seed} ({role})")

    return make(range(n_calib), "calibration"), make(range(n_calib, n_calib + n_held), "held-out")


def _read_folder(folder: Path, size: int, role: str, split: tuple[str, dict] | None = None,
                 part: str = "all") -> ImageSet:
    """Images (and masks, when every image has one) of a folder, or of one part of a split of it."""
    from egeunet.data.imageio import read_image, read_mask
    from egeunet.data.layouts import find_samples
    from egeunet.data.splits import select

    try:
        samples = find_samples(folder)
    except EGEUNetError as exc:
        raise EGEUNetError(f"no {role} images: {exc}") from None
    if split is not None:
        samples = select(samples, split[1], part, split[0])
        if not samples:
            raise EGEUNetError(f"{split[0]}: its {part} part is empty: no {role} images")
    images = np.stack([to_model_size(read_image(s.image), size) for s in samples])
    masks = None
    if all(s.mask is not None for s in samples):
        masks = np.stack([_mask_to_size(read_mask(s.mask), size) for s in samples])
    return ImageSet(images, masks, tuple(s.id for s in samples), str(folder))


def split_sets(data_dir: str | Path, split_file: str | Path, size: int, n_calib: int,
               n_held: int | None) -> tuple[ImageSet, ImageSet]:
    """Calibration from the train part of the model's own split, held-out images from its test part (all of them,
    up to ``MAX_TEST_HELD``, unless ``n_held`` is given): the dataset's own test images decide the gates."""
    from egeunet.data.splits import load_split

    split = (str(split_file), load_split(split_file))
    calib = _read_folder(Path(data_dir), size, "calibration", split, "train").subset(0, n_calib)
    test = _read_folder(Path(data_dir), size, "held-out", split, "test")
    count = min(len(test), n_held or MAX_TEST_HELD)
    return (ImageSet(calib.images, calib.masks, calib.ids, f"{data_dir} (calibration: first {len(calib)} of the train "
                     f"part of {split_file})"),
            test.subset(0, count, f"{data_dir} (held-out: {count} of {len(test)} images of the test part of {split_file})"))


def folder_sets(calib_dir: str | Path, size: int, n_calib: int, n_held: int,
                held_dir: str | Path | None = None) -> tuple[ImageSet, ImageSet]:
    """Calibration from ``calib_dir``; held-out from ``held_dir`` or else the last n_held images of calib_dir."""
    calib = _read_folder(Path(calib_dir), size, "calibration")
    if held_dir is not None:
        held = _read_folder(Path(held_dir), size, "held-out").subset(0, n_held)
        overlap = set(held.ids) & set(calib.ids[:n_calib])
        if overlap:
            raise EGEUNetError(f"held-out images are also calibration images: {sorted(overlap)[:3]}")
        return calib.subset(0, n_calib), held
    if len(calib) <= n_held:
        raise EGEUNetError(f"{calib_dir}: {len(calib)} images; need more than {n_held} so that {n_held} can be held out "
                           "from calibration (or pass --held-out DIR)")
    cut = len(calib) - n_held
    first = min(n_calib, cut)
    return (calib.subset(0, first, f"{calib.source} (calibration: first {first} by id)"),
            calib.subset(cut, None, f"{calib.source} (held-out: last {n_held} by id)"))
