"""What a benchmark measures: the artifacts of an export folder (from its manifest) or one model file.

Each artifact becomes a ``Target`` with a runtime, or with a ``problem`` (missing file, sha256
mismatch, unknown format) that the report shows as a marked row instead of measuring it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from egeunet.errors import EGEUNetError

MANIFEST = "manifest.json"


@dataclass
class Target:
    """One model file to benchmark; ``method`` is how the manifest says it was built (empty without one)."""

    name: str
    path: Path
    runtime: str | None = None
    format: str = ""
    precision: str = ""
    method: str = ""
    problem: str | None = None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file or package folder, computed as the exporter's manifest computes it."""
    from egeunet.export.manifest import file_digest

    return file_digest(path)[1]


def _runtime(path: Path) -> str | None:
    from egeunet.benchmark.runners.base import runtime_for

    try:
        return runtime_for(path)
    except EGEUNetError:
        return None


def target_for_file(path: Path, entry: dict | None = None) -> Target:
    """A target for one file, checking it exists, has a known runtime and matches its manifest sha256."""
    entry = entry or {}
    runtime = _runtime(path)
    target = Target(path.name, path, runtime, entry.get("format") or (runtime or path.suffix.lstrip(".")),
                    entry.get("precision", ""), entry.get("method", ""))
    if not path.exists():
        target.problem = "file missing"
    elif runtime is None:
        target.problem = (f"unknown runtime for format {target.format!r} ({path.suffix or 'no extension'}); "
                          "known: .pt/.pth pytorch, .onnx onnxruntime, .tflite litert, .mlpackage coreml")
    elif entry.get("sha256") and entry["sha256"] != (actual := sha256_file(path)):
        target.problem = f"sha256 mismatch: manifest {entry['sha256'][:12]}..., file {actual[:12]}..."
    return target


def read_manifest(folder: Path) -> dict:
    """The export manifest of ``folder`` as a dict, or a one-line error."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EGEUNetError(f"{folder / MANIFEST}: not a readable export manifest ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list):
        raise EGEUNetError(f"{folder / MANIFEST}: no 'artifacts' list")
    return manifest


def manifest_source(manifest: dict, folder: Path) -> tuple[Path | None, str | None]:
    """The source checkpoint (path, sha256 when recorded) of an export manifest (``model.path``), resolved against it."""
    source = manifest.get("model") or {}
    if not source.get("path"):
        return None, None
    path = Path(source["path"])
    if not path.is_absolute() and not path.exists():
        path = folder / path
    return path, source.get("sha256")


def collect_targets(model_or_dir: str | Path) -> tuple[list[Target], dict | None]:
    """Targets of an export folder (its manifest, else every model file in it) or of one file; and the manifest."""
    root = Path(model_or_dir)
    if not root.exists():
        raise EGEUNetError(f"{root}: no such file or folder")
    if root.is_file() or root.suffix in (".mlpackage",):
        return [target_for_file(root)], None
    if not (root / MANIFEST).is_file():
        files = sorted(p for p in root.iterdir() if _runtime(p))
        if not files:
            raise EGEUNetError(f"{root}: no {MANIFEST} and no model files (.pt, .onnx, .tflite, .mlpackage)")
        return [target_for_file(p) for p in files], None
    manifest = read_manifest(root)
    targets = []
    for entry in manifest["artifacts"]:
        if not entry.get("file"):
            targets.append(Target(str(entry.get("variant", "?")), root, problem="manifest entry without a file"))
            continue
        targets.append(target_for_file(root / entry["file"], entry))
    for entry in manifest.get("failed") or []:  # listed by the exporter but not kept: a row, not a silence
        name = entry.get("file") or str(entry.get("variant", "?"))
        targets.append(Target(name, root / name, format=entry.get("format", ""), precision=entry.get("precision", ""),
                              method=entry.get("method", ""), problem=f"not exported: {entry.get('error', 'failed')}"))
    return targets, manifest


def reference_target(path: Path, expected_sha256: str | None = None) -> Target:
    """The fp32 PyTorch reference every artifact is compared with; its sha256 is checked when known."""
    target = target_for_file(path, {"sha256": expected_sha256} if expected_sha256 else None)
    target.name, target.precision = f"{path.name} (reference)", "fp32"
    if target.problem is None and target.runtime != "pytorch":
        target.problem = f"the reference must be a PyTorch checkpoint (.pt/.pth), got {path.suffix}"
    return target
