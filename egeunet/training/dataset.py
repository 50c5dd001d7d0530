"""The run's data: the split (given, resumed or made), and one validated cache of every image it lists.

The whole dataset is decoded and checked here, before epoch 1, so a bad file never stops a long run
half way. Parts are index arrays into the one cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egeunet.checkpoint import read_checkpoint
from egeunet.data.cache import CachedSplit, open_cache
from egeunet.data.layouts import find_samples
from egeunet.data.splits import PARTS, load_split, make_split, select
from egeunet.errors import EGEUNetError


@dataclass(frozen=True)
class SplitData:
    """A cache of the split's images and, per part, the rows of the cache that belong to it."""

    cached: CachedSplit
    split: dict[str, list[str]]
    parts: dict[str, np.ndarray]
    split_hash: str

    def rows(self, part: str) -> np.ndarray:
        """Cache rows of ``part`` (train, val, test) or of every part (``all``)."""
        if part == "all":
            return np.arange(len(self.cached))
        return self.parts[part]


def split_hash(split: dict[str, list[str]]) -> str:
    """Short content hash of a split, stored with checkpoints to recognise it later."""
    text = json.dumps({p: sorted(split[p]) for p in PARTS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def choose_split(data: str | os.PathLike, split_file: str | os.PathLike | None, seed: int) -> dict[str, list[str]]:
    """The split in ``split_file`` if given, else the paper's seeded 7:3 split (validation carved from train)."""
    if split_file:
        return load_split(split_file)
    return make_split([s.id for s in find_samples(data)], seed=seed)


def open_split_data(data: str | os.PathLike, split: dict[str, list[str]], size: int, source: str = "split",
                    cache_dir: str | None = None, skip_bad: bool = False, workers: int | None = None) -> SplitData:
    """Decode (once; cached) and validate every image of ``split`` at ``size``; bad files stop here or are skipped."""
    samples = select(find_samples(data), split, "all", source=source)
    cached = open_cache(samples, size=size, cache_dir=cache_dir, skip_bad=skip_bad, workers=workers)
    position = {key: row for row, key in enumerate(cached.ids)}
    parts = {p: np.array([position[k] for k in split[p] if k in position], dtype=np.int64) for p in PARTS}
    return SplitData(cached, split, parts, split_hash(split))


def check_parts(data: SplitData, source: str | Path) -> None:
    """Training needs images in train and val (test may be empty when a split file says so)."""
    for part in ("train", "val"):
        if not len(data.parts[part]):
            raise EGEUNetError(f"{source}: the {part} part has no usable images; use more images or another split")


def recorded_split(model: str, data: str) -> str | None:
    """The split file a training checkpoint recorded, if it was trained on ``data`` and the file still exists."""
    from egeunet.runtime.formats import is_checkpoint

    if not is_checkpoint(model):
        return None
    training = read_checkpoint(model).get("training", {})
    path = training.get("split_file")
    same_data = training.get("data") == str(Path(data).resolve())
    return path if same_data and path and Path(path).is_file() else None
