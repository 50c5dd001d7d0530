"""Atomic writes: a file or folder appears complete under its final name or not at all."""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from egeunet.errors import EGEUNetError

TEMP_PREFIX = 40  # characters of the final name kept in the temporary one


def check_name(path: str | os.PathLike, fix: str = "use a shorter name") -> None:
    """One-line EGEUNetError when the last name of ``path`` is longer than its file system allows."""
    path = Path(path)
    folder = next((p for p in path.parents if os.path.isdir(p)), Path("."))
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    length = len(os.fsencode(path.name))
    if length > limit:
        raise EGEUNetError(f"{path}: the name is {length} bytes, longer than the {limit} bytes its file system "
                           f"allows; {fix}")


def _temporary_name(final: Path) -> Path:
    """A unique hidden name beside `final` (one file system for the last rename), never longer than 64 characters.

    It keeps the start of the final name, so a leftover from a killed process says what it was.
    """
    check_name(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.parent / f".{final.name[:TEMP_PREFIX]}.{uuid.uuid4().hex[:16]}.tmp"


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
