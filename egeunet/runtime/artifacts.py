"""Artifacts and what runs them: file digests, the export manifest as read back, (artifact, runtime) targets.

Export writes the manifest; benchmark, golden vectors and the demos read it through here, so the two sides agree
on one format without importing each other.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from egeunet.errors import EGEUNetError

MANIFEST = "manifest.json"


def file_digest(path: str | Path) -> tuple[int, str]:
    """(bytes, sha256) of a file, or of a package folder (every file, sorted by relative path, name and content)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest, total = hashlib.sha256(), 0
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                total += len(block)
    return total, digest.hexdigest()


def read_manifest(folder: str | Path) -> dict:
    """The export manifest of ``folder`` as a dict, or a one-line error."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EGEUNetError(f"{path}: not a readable export manifest ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list) \
            or not all(isinstance(a, dict) for a in manifest["artifacts"]):
        raise EGEUNetError(f"{path}: no 'artifacts' list of records")
    return manifest


def manifest_source(manifest: dict, folder: str | Path) -> tuple[Path | None, str | None]:
    """The source checkpoint (path, sha256 when recorded) of an export manifest.

    Exports record an absolute path; a relative one (older manifests) is taken relative to the manifest's folder,
    never to the current directory.
    """
    source = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    if not source.get("path"):
        return None, None
    path = Path(str(source["path"]))
    return (path if path.is_absolute() else Path(folder) / path), source.get("sha256")


@dataclass
class Artifact:
    """One model file; ``problem`` (missing, sha256 mismatch, not exported) marks it unmeasurable."""

    name: str
    path: Path
    format: str = ""
    precision: str = ""
    method: str = ""
    sha256: str | None = None
    problem: str | None = None
    optional: bool = False  # an optional artifact the exporter did not keep: shown, never gated

    def check(self) -> "Artifact":
        """Set ``problem`` when the file is missing or differs from its recorded sha256; returns self."""
        if self.problem is None and not self.path.exists():
            self.problem = "file missing"
        elif self.problem is None and self.sha256 and self.sha256 != (actual := file_digest(self.path)[1]):
            self.problem = f"sha256 mismatch: manifest {self.sha256[:12]}..., file {actual[:12]}..."
        return self


@dataclass
class Target:
    """An (artifact, runtime) pair: what one benchmark row measures. ``runtime`` None: no runtime runs the file."""

    artifact: Artifact
    runtime: str | None
    default_runtime: bool = True

    @property
    def name(self) -> str:
        """The row's name: the file name, plus the runtime when it is not the file's default one."""
        return self.artifact.name if self.default_runtime else f"{self.artifact.name} @{self.runtime}"

    @property
    def problem(self) -> str | None:
        return self.artifact.problem
