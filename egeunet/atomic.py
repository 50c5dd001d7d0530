"""Atomic writes: a file or folder appears complete under its final name or not at all."""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path


def _temporary_name(final: Path) -> Path:
    """A unique hidden name beside `final`, so the last rename stays on one file system."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.parent / f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside `path`; on success it replaces `path` in one rename."""
    final = Path(path)
    tmp = _temporary_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; on success it is renamed to `path`.

    `path` must be absent or an empty folder (POSIX rename replaces only empty folders).
    """
    final = Path(path)
    tmp = _temporary_name(final)
    tmp.mkdir()
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``, so a crash never leaves half a file."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file + os.replace)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
