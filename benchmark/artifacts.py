"""What a benchmark measures: (artifact, runtime) targets from an export folder's manifest or from one model file.

Each artifact runs on its default runtime, or on every requested runtime that can run it (``--runtimes litert,
litert-arm64`` measures each .tflite twice). An artifact with a problem (missing file, sha256 mismatch, exported from
another checkpoint, unknown format, not exported) becomes a marked row instead of a measurement.
"""
from __future__ import annotations

from pathlib import Path

from egeunet.errors import EGEUNetError
from egeunet.runtime.artifacts import MANIFEST, Artifact, Target, manifest_source, read_manifest
from egeunet.runtime.formats import all_suffixes
from egeunet.runtime.runners import runtimes_for


def artifact_for_file(path: Path, entry: dict | None = None, source_sha256: str | None = None) -> Artifact:
    """An artifact for one file, checked: it exists, matches its manifest sha256 and was built from the manifest's model."""
    entry = entry or {}
    known = runtimes_for(path)
    artifact = Artifact(path.name, path, str(entry.get("format") or (known[0] if known else path.suffix.lstrip("."))),
                        str(entry.get("precision", "")), str(entry.get("method", "")), entry.get("sha256"))
    built_from = (entry.get("source") or {}).get("sha256") if isinstance(entry.get("source"), dict) else None
    if built_from and source_sha256 and built_from != source_sha256:
        artifact.problem = (f"exported from another checkpoint (sha256 {built_from[:12]}...) than the manifest's model "
                            f"({source_sha256[:12]}...): re-export it")
    return artifact.check()


def targets_for(artifact: Artifact, runtimes: list[str] | None) -> list[Target]:
    """The (artifact, runtime) pairs: the file's default runtime, plus each requested runtime that also runs it.

    The default pair is kept even when not requested, so a checkpoint can still serve as the reference; the
    benchmark drops unrequested pairs after choosing its reference."""
    known = runtimes_for(artifact.path)
    if not known:
        artifact.problem = artifact.problem or f"unknown model format {artifact.path.suffix or '(no extension)'!r}"
        return [Target(artifact, None)]
    if artifact.problem:
        return [Target(artifact, known[0])]
    chosen = list(dict.fromkeys(known[:1] + [r for r in runtimes or [] if r in known]))
    return [Target(artifact, r, default_runtime=(r == known[0])) for r in chosen]


def collect_targets(model_or_dir: str | Path, runtimes: list[str] | None = None) -> tuple[list[Target], dict | None]:
    """Targets of an export folder (its manifest, else every model file in it) or of one file; and the manifest."""
    root = Path(model_or_dir)
    if not root.exists():
        raise EGEUNetError(f"{root}: no such file or folder")
    if root.is_file() or runtimes_for(root):  # a file, or a package folder (.mlpackage)
        return targets_for(artifact_for_file(root), runtimes), None
    if not (root / MANIFEST).is_file():
        files = sorted(p for p in root.iterdir() if runtimes_for(p))
        if not files:
            raise EGEUNetError(f"{root}: no {MANIFEST} and no model files ({', '.join(all_suffixes())})")
        return [t for p in files for t in targets_for(artifact_for_file(p), runtimes)], None
    manifest = read_manifest(root)
    _, source_sha = manifest_source(manifest, root)
    targets: list[Target] = []
    for entry in manifest["artifacts"]:
        if not entry.get("file"):
            missing = Artifact(str(entry.get("variant", "?")), root, problem="manifest entry without a file")
            targets.append(Target(missing, None))
            continue
        targets += targets_for(artifact_for_file(root / str(entry["file"]), entry, source_sha), runtimes)
    for entry in manifest.get("failed") or []:  # listed by the exporter but not kept: a row, not a silence
        name = str(entry.get("file") or entry.get("variant", "?"))
        failed = Artifact(name, root / name, str(entry.get("format", "")), str(entry.get("precision", "")),
                          str(entry.get("method", "")), problem=f"not exported: {entry.get('error', 'failed')}",
                          optional=bool(entry.get("optional")))
        targets.append(Target(failed, None))
    return targets, manifest


def reference_target(path: Path, expected_sha256: str | None = None) -> Target:
    """The fp32 PyTorch reference every artifact is compared with; its sha256 is checked when known."""
    artifact = Artifact(f"{path.name} (reference)", path, "pytorch", "fp32", sha256=expected_sha256).check()
    if artifact.problem is None and "pytorch" not in runtimes_for(path):
        artifact.problem = f"the reference must be a PyTorch checkpoint (.pt/.pth), got {path.suffix}"
    return Target(artifact, "pytorch")
