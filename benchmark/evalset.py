"""The images a benchmark measures accuracy on: one split of a dataset, preprocessed by the deployed contract.

Inputs go through ``egeunet.preprocess`` from the original files, exactly as an app would (``egeunet
evaluate`` scores from the training cache, resized before the stretch, so its last digits can differ).
Masks are resized nearest-neighbour to the model size and binarised by the paper's rule (mask / 255
>= 0.5). A dataset without masks keeps ``masks = None``: drift against PyTorch still runs,
ground-truth metrics do not. The split stays in memory: 0.75 MB per image at 256 x 256.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from egeunet.errors import EGEUNetError
from egeunet.progress import progress


@dataclass
class EvalSet:
    """Preprocessed inputs N x 3 x S x S, binary masks N x S x S (or None), ids and source paths."""

    ids: list[str]
    images: list[Path]
    inputs: np.ndarray
    masks: np.ndarray | None
    split_source: str


def choose_samples(data: str | Path, split: str | None, split_file: str | Path | None = None) -> tuple[list, str]:
    """The samples of ``split`` (default test) of ``split_file``; without a split file, every image (``all``).

    Same rule as ``egeunet evaluate``. Returns (samples, a line saying where they came from).
    """
    from egeunet.data import find_samples, load_split, select

    samples = find_samples(data)
    if split_file:
        part = split or "test"
        return select(samples, load_split(split_file), part, str(split_file)), f"{part} part of {split_file}"
    if split not in (None, "all"):
        raise EGEUNetError(f"--split {split} needs a split: pass --split-file (a run's split.json), or use --split all")
    return samples, f"all {len(samples)} images (no split file given or recorded)"


def load_eval_set(data: str | Path, split: str | None, size: int, split_file: str | Path | None = None,
                  limit: int | None = None) -> EvalSet:
    """Read, preprocess and keep in memory the images (and masks, if every image has one) of a split."""
    import cv2
    import torch

    from egeunet.data import mask_targets, read_image, read_mask
    from egeunet.preprocess import preprocess

    samples, source = choose_samples(data, split, split_file)
    samples = samples[:limit] if limit else samples
    if not samples:
        raise EGEUNetError(f"{data}: no images in the {source}")
    with_masks = all(s.mask is not None for s in samples)
    inputs = np.empty((len(samples), 3, size, size), np.float32)
    masks = np.empty((len(samples), size, size), bool) if with_masks else None
    for i, sample in enumerate(progress(samples, desc=f"reading {len(samples)} images", unit="img", leave=False)):
        inputs[i] = preprocess(read_image(sample.image), size)[0]
        if masks is not None:
            mask = cv2.resize(read_mask(sample.mask), (size, size), interpolation=cv2.INTER_NEAREST)
            masks[i] = mask_targets(torch.from_numpy(mask)).numpy() > 0
    return EvalSet([s.id for s in samples], [s.image for s in samples], inputs, masks, source)
