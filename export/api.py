"""``export_all``: one checkpoint -> every requested format x precision, each validated, plus manifest and golden vectors.

Artifacts are built under ``OUT/.pending/`` and moved into ``OUT`` only after their gate passes, so a
failed conversion or gate leaves nothing behind. All failures are collected, the manifest is written,
then one ``ExportFailed`` names them (the CLI exits non-zero).
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.export.base import get_format, list_formats
from egeunet.export.spec import PRECISIONS, ExportSpec, Gates, parse_list

DEFAULT_SEED = 0


class ExportFailed(EGEUNetError):
    """Some artifacts failed conversion or their gate; ``manifest`` holds what was kept and why others were not."""

    def __init__(self, message: str, manifest: dict) -> None:
        super().__init__(message)
        self.manifest = manifest


def _image_sets(spec_size: int, calib_dir, held_dir, n_calib: int, n_held: int):
    from egeunet.export.data import folder_sets, synthetic_sets

    if n_calib < 1:
        raise EGEUNetError(f"--n-calib must be at least 1, got {n_calib}: int8 needs calibration images")
    if calib_dir is None:
        return synthetic_sets(spec_size, n_calib, n_held, DEFAULT_SEED)
    return folder_sets(calib_dir, spec_size, n_calib, n_held, held_dir)


def _move(src: Path, dst: Path) -> None:
    """Rename an artifact (file or package folder) into place, replacing an older one."""
    if dst.is_dir():
        shutil.rmtree(dst)
    os.replace(src, dst)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _build_one(exporter, deploy, spec: ExportSpec, variant, pending: Path, out: Path, reference, held) -> dict:
    """Export, validate and describe one variant; keep it only if its gate passes."""
    from egeunet.export.manifest import file_digest

    name = f"egeunet_{variant.name}{exporter.config.suffix}"
    staged = pending / name
    record = {"format": exporter.config.name, "precision": variant.precision, "variant": variant.name,
              "method": variant.method, "file": name}
    start = time.perf_counter()
    try:
        exporter.export(deploy, spec, staged, variant)
        record["export_seconds"] = round(time.perf_counter() - start, 1)
        record["validation"] = exporter.validate(staged, reference, held, spec, variant)
        info = exporter.describe(staged)
    except Exception as exc:  # a converter crash fails this artifact, not the whole run (named in the manifest)
        _remove(staged)
        message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        error = message if isinstance(exc, EGEUNetError) else f"conversion failed: {type(exc).__name__}: {message}"
        return {**record, "kept": False, "error": error}
    if not record["validation"]["passed"]:
        _remove(staged)
        return {**record, "kept": False, "error": f"gate failed: {record['validation']['gate']}"}
    size, sha = file_digest(staged)
    _move(staged, out / name)
    return {**record, "kept": True, "bytes": size, "sha256": sha,
            "inputs": info["inputs"], "outputs": info["outputs"], "layout": spec.layout,
            "baked_preprocess": spec.bake_preprocess, "ops": info["ops"], "op_counts": info["op_counts"],
            "quantization": info.get("quantization"), "contract": info.get("contract"),
            **({"int8_drift_budget": info["int8_drift_budget"]} if info.get("int8_drift_budget") else {}),
            **({"size_breakdown": info["size_breakdown"]} if "size_breakdown" in info else {})}


def _golden(out: Path, kept: list[dict]) -> dict:
    """Golden vectors for the phone/web demos (``egeunet.golden``) of the kept ONNX and TFLite artifacts."""
    from egeunet.export.manifest import GOLDEN_FILES

    if not any(r["file"].endswith((".onnx", ".tflite")) for r in kept):
        return {"written": False, "reason": "no ONNX or TFLite artifact to run"}
    try:
        from egeunet.golden import write_golden

        folder = write_golden(out)
    except Exception as exc:  # golden vectors are an extra for the demos: never lose the manifest over them
        return {"written": False, "reason": f"egeunet.golden failed: {type(exc).__name__}: {str(exc)[:200]}"}
    return {"written": True, "folder": folder.name, "index": f"{folder.name}/index.json", "files": GOLDEN_FILES}


def export_all(model_path: str | Path, out: str | Path, formats: str | Sequence[str] = ("onnx", "tflite", "coreml"),
               precisions: str | Sequence[str] = PRECISIONS, calib_dir: str | Path | None = None, n_calib: int = 64,
               held_dir: str | Path | None = None, n_held: int = 8, size: int | None = None, nhwc: bool = False,
               bake_preprocess: bool = False, int8_io: bool = False, calib_method: str = "minmax",
               gates: Gates | None = None, golden: bool = True, progress: bool = True,
               int8_drift_budget: float | None = None) -> dict:
    """Export ``model_path`` to every format x precision under ``out``; returns the manifest (also OUT/manifest.json).

    ``int8_drift_budget``: ONNX int8 keeps its most sensitive layers in float until mask agreement with fp32 on the
    calibration images is at least this fraction.

    Raises ``ExportFailed`` (after writing the manifest) when any artifact failed, ``EGEUNetError`` for bad input.
    """
    from tqdm import tqdm

    from egeunet.checkpoint import load_model
    from egeunet.export.deploy import deploy_form
    from egeunet.export.manifest import write_manifest
    from egeunet.versions import library_versions

    formats = parse_list(formats, tuple(list_formats()), "format")
    precisions = parse_list(precisions, PRECISIONS, "precision")
    if int8_io and "int8" not in precisions:
        raise EGEUNetError("--int8-io needs int8 in --precisions")
    try:
        model, meta = load_model(model_path, with_meta=True)
    except EGEUNetError:
        raise
    except Exception as exc:  # torch's unpickler raises e.g. KeyError on a text file
        raise EGEUNetError(f"{model_path}: not a model checkpoint ({type(exc).__name__}: {str(exc)[:100]})") from None
    spec = ExportSpec(size=int(size or meta.get("input_size", 256)), nhwc=nhwc, bake_preprocess=bake_preprocess,
                      int8_io=int8_io, calib_method=calib_method, gates=gates or Gates(),
                      int8_drift_budget=int8_drift_budget)
    calib, held = _image_sets(spec.size, calib_dir, held_dir, n_calib, n_held)
    spec = spec.with_(calibration=calib)
    reference = reference_probs(model, held.images)
    deploy = deploy_form(model, spec.size, bake_preprocess, nhwc)

    out = Path(out)
    pending = out / ".pending"
    pending.mkdir(parents=True, exist_ok=True)
    jobs = [(get_format(f), v) for f in formats for p in precisions for v in get_format(f).variants(p, spec)]
    records = []
    try:
        for exporter, variant in tqdm(jobs, desc="exporting", unit="artifact", disable=not progress):
            records.append(_build_one(exporter, deploy, spec, variant, pending, out, reference, held))
    finally:
        shutil.rmtree(pending, ignore_errors=True)
    kept = [r for r in records if r["kept"]]
    manifest = {
        "format": "egeunet-export-manifest", "version": 1,
        "model": {"path": str(model_path), "source": meta.get("source"), "config": model.config.to_dict()},
        "input_size": spec.size, "layout": spec.layout, "baked_preprocess": bake_preprocess,
        "calibration": {**calib.describe(), "method": calib_method},
        "held_out": {**held.describe(), "images_overlap_calibration": bool(set(calib.ids) & set(held.ids))},
        "gates": vars(spec.gates),
        "int8_drift_budget": None if int8_drift_budget is None else {
            "budget": int8_drift_budget, "applies_to": "ONNX int8 only: TFLite and CoreML int8 quantize every layer"},
        "artifacts": kept,
        "failed": [r for r in records if not r["kept"]],
        "golden": _golden(out, kept) if golden else {"written": False, "reason": "not requested"},
        "versions": library_versions(),
    }
    write_manifest(out, manifest)
    if manifest["failed"]:
        names = "; ".join(f"{r['file']}: {r['error']}" for r in manifest["failed"])
        raise ExportFailed(f"{len(manifest['failed'])} of {len(records)} artifacts failed and were not kept ({names})", manifest)
    return manifest


def summary_table(manifest: dict) -> str:
    """Plain-text table of every artifact: bytes, gate numbers and verdict."""
    rows = [("file", "bytes", "max|d|", "agree", "dIoU", "result")]
    for r in manifest["artifacts"] + manifest["failed"]:
        v = r.get("validation", {})
        numbers = (f"{v['max_abs_diff']:.2e}", f"{v['mask_agreement']:.4f}", f"{v['iou_change']:.4f}") \
            if "max_abs_diff" in v else ("-", "-", "-")
        verdict = "ok" if r["kept"] else "FAILED"
        if v.get("skipped_reason"):
            verdict += f" (numeric check skipped: {v['skipped_reason']})"
        rows.append((r["file"], f"{r.get('bytes', 0):,}" if r["kept"] else "-", *numbers, verdict))
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row[:5], widths)) + "  " + row[5] for row in rows)


def reference_probs(model, images: np.ndarray) -> np.ndarray:
    """fp32 PyTorch probabilities N x S x S for uint8 images at the model size (the validation reference)."""
    import torch

    from egeunet.preprocess import preprocess

    with torch.no_grad():
        return model(torch.from_numpy(preprocess(images, images.shape[1]))).numpy()[:, 0]
