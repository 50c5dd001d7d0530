"""The paper's split protocol: a seeded 7:3 train/test split, then a validation part carved from train.

The validation part (for checkpoint selection) never comes from test, unlike the authors' code,
which chose the checkpoint on the test split itself. Splits are saved as JSON, sorted ids per part.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egeunet.atomic import write_bytes_atomic
from egeunet.data.layouts import Sample
from egeunet.errors import EGEUNetError

PARTS = ("train", "val", "test")


def make_split(
    ids: Sequence[str], seed: int, test_fraction: float = 0.3, val_fraction: float = 0.1
) -> dict[str, list[str]]:
    """Split `ids` into train/val/test: test is `test_fraction` of all, val is `val_fraction` of the rest.

    Sizes are rounded half up, with at least one id in a part whose fraction is above zero.
    The result depends only on the set of ids and the seed, not on their order.
    """
    ordered = sorted(set(ids))
    if len(ordered) != len(ids):
        raise EGEUNetError(f"cannot split: {len(ids) - len(ordered)} duplicate ids")
    for name, fraction in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise EGEUNetError(f"cannot split: {name} {fraction} is not in [0, 1)")
    n_test = _part_size(len(ordered), test_fraction)
    n_val = _part_size(len(ordered) - n_test, val_fraction)
    if len(ordered) - n_test - n_val < 1:
        raise EGEUNetError(f"cannot split {len(ordered)} images into train/val/test: need more images")
    order = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in order]
    return {
        "train": sorted(shuffled[n_test + n_val :]),
        "val": sorted(shuffled[n_test : n_test + n_val]),
        "test": sorted(shuffled[:n_test]),
    }


def save_split(path: str | os.PathLike, split: dict[str, list[str]]) -> None:
    """Write `split` as JSON (`{"train": [...], "val": [...], "test": [...]}`, ids sorted), atomically."""
    text = json.dumps({part: sorted(split[part]) for part in PARTS}, indent=1)
    write_bytes_atomic(path, (text + "\n").encode())


def load_split(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a split file written by `save_split`, checking its parts and that they are disjoint."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EGEUNetError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EGEUNetError(f"{path}: not a readable JSON split file ({exc})") from None
    if not isinstance(data, dict) or set(data) != set(PARTS):
        raise EGEUNetError(f"{path}: a split file needs exactly the keys {', '.join(PARTS)}")
    seen: dict[str, str] = {}
    for part in PARTS:
        ids = data[part]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise EGEUNetError(f"{path}: part {part!r} must be a list of id strings")
        for key in ids:
            if key in seen:
                raise EGEUNetError(f"{path}: id {key} is in both {seen[key]} and {part}")
            seen[key] = part
    return {part: sorted(data[part]) for part in PARTS}


def select(
    samples: Sequence[Sample], split: dict[str, list[str]], part: str, source: str = "split"
) -> list[Sample]:
    """The samples of `part` (train, val, test, or all three) in split order; `source` names the split in errors."""
    if part not in (*PARTS, "all"):
        raise EGEUNetError(f"unknown split part {part!r} (use one of {', '.join(PARTS)}, all)")
    wanted = sorted(i for p in PARTS for i in split[p]) if part == "all" else split[part]
    by_id = {s.id: s for s in samples}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise EGEUNetError(
            f"{source}: id {missing[0]} is not in the dataset ({len(missing)} of {len(wanted)} "
            f"{part} ids missing); was the split made for another dataset?"
        )
    return [by_id[i] for i in wanted]


def _part_size(n: int, fraction: float) -> int:
    """round(n * fraction) half up, and at least 1 when fraction > 0."""
    if fraction == 0.0 or n == 0:
        return 0
    return max(1, math.floor(n * fraction + 0.5))
