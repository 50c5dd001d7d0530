"""An export folder that is never inconsistent: one writer at a time, and a manifest true after every step.

``ExportFolder`` takes an exclusive lock on ``OUT/.egeunet-export.lock`` (``fcntl.flock``: a killed run's lock
vanishes with its process, so a stale lock file is simply reused), reads the previous manifest, and rewrites the
manifest atomically after each artifact: every file it lists exists with its sha256, at every moment, whether the run
finishes, fails a gate, is interrupted or is killed. Artifacts the run does not (successfully) rebuild keep their
previous entries.
"""
from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from egeunet.errors import EGEUNetError
from egeunet.export.manifest import write_manifest
from egeunet.runtime.artifacts import MANIFEST, file_digest, read_manifest

LOCK = ".egeunet-export.lock"
PENDING = ".pending"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


class ExportFolder:
    """The output folder of one export run (a context manager holding its lock)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.pending = self.out / PENDING
        self._lock_file = None
        self.entries: dict[str, dict] = {}  # file name -> manifest record, previous and new

    def __enter__(self) -> "ExportFolder":
        if self.out.exists() and not self.out.is_dir():
            raise EGEUNetError(f"{self.out}: is a file, not a folder: choose another --out")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.out / LOCK, "a+")
        except OSError as exc:
            raise EGEUNetError(f"{self.out}: cannot write there ({exc.strerror}): choose another --out") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "unknown"
            self._lock_file.close()
            self._lock_file = None
            raise EGEUNetError(f"{self.out}: another egeunet export is writing there (process {holder}); "
                               "wait for it to finish or choose another --out") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()
        _remove(self.pending)  # left by a killed run
        self.pending.mkdir()
        self.entries = self._previous_entries()
        return self

    def __exit__(self, *exc) -> None:
        _remove(self.pending)
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()

    def _previous_entries(self) -> dict[str, dict]:
        """Entries of the previous manifest whose files are still there, unchanged (others are dropped)."""
        if not (self.out / MANIFEST).is_file():
            return {}
        try:
            previous = read_manifest(self.out)["artifacts"]
        except EGEUNetError:
            return {}
        kept = {}
        for entry in previous:
            name = entry.get("file")
            path = self.out / str(name)
            if name and path.exists() and entry.get("sha256") == file_digest(path)[1]:
                kept[name] = {**entry, "from_earlier_export": True}
        return kept

    def staged(self, name: str) -> Path:
        """Where to build an artifact before it is accepted."""
        return self.pending / name

    def accept(self, name: str, record: dict, manifest: dict) -> None:
        """Move a staged artifact into place and list it; the manifest is true before, during and after."""
        if name in self.entries:  # unlist the old file before replacing it
            del self.entries[name]
            self.write(manifest)
        final = self.out / name
        _remove(final)
        os.replace(self.pending / name, final)
        self.entries[name] = record
        self.write(manifest)

    def discard(self, name: str) -> None:
        """Drop a staged artifact that failed (an earlier good one of the same name stays listed)."""
        _remove(self.pending / name)

    def write(self, manifest: dict) -> None:
        """Write the manifest with the current artifact list."""
        manifest["artifacts"] = list(self.entries.values())
        write_manifest(self.out, manifest)
