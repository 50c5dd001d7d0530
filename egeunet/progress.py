"""Progress for long work: a tqdm bar on a terminal; in a log (no TTY), a plain line every few seconds."""
from __future__ import annotations

from collections.abc import Iterable, Iterator


def progress(iterable: Iterable, desc: str, total: int | None = None, unit: str = "it", leave: bool = True,
             disable: bool = False) -> Iterator:
    """Iterate ``iterable`` showing progress (tqdm on a terminal)."""
    from tqdm import tqdm

    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, disable=disable))
