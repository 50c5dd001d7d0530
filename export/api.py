"""``export_all``: one checkpoint -> every requested format x recipe, each validated, plus manifest and golden vectors.

Artifacts are built under ``OUT/.pending/`` and moved into ``OUT`` only after their gate passes (``ExportFolder``
keeps the folder locked and its manifest true after every step). All failures are collected, the manifest is
written, then one ``ExportFailed`` names them (the CLI exits non-zero).
"""
from __future__ import annotations

import dataclasses
import textwrap
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egeunet.accuracy import Gate
from egeunet.errors import EGEUNetError
from egeunet.export.base import get_format, list_formats
from egeunet.export.spec import PRECISIONS, ExportSpec, default_gates, parse_list
from egeunet.progress import progress as show_progress

DEFAULT_SEED = 0


class ExportFailed(EGEUNetError):
    """Some artifacts failed conversion or their gate; ``manifest`` holds what was kept and why others were not."""

    def __init__(self, message: str, manifest: dict) -> None:
        super().__init__(message)
        self.manifest = manifest


def _image_sets(spec_size: int, calib_dir, held_dir, n_calib: int, n_held: int | None, model_path):
    """Calibration and held-out images: the model's own train/test split when ``calib_dir`` is its training data
    (and no ``held_dir``), else the folder(s) given, else the synthetic sample."""
    from egeunet.export.data import DEFAULT_HELD, folder_sets, split_sets, synthetic_sets
    from egeunet.training.dataset import recorded_split

    if n_calib < 1:
        raise EGEUNetError(f"--n-calib must be at least 1, got {n_calib}: int8 needs calibration images")
    if n_held is not None and n_held < 1:
        raise EGEUNetError(f"--n-held must be at least 1, got {n_held}: every artifact is validated on held-out images")
    if calib_dir is None:
        return synthetic_sets(spec_size, n_calib, n_held or DEFAULT_HELD, DEFAULT_SEED)
    split_file = None if held_dir is not None else recorded_split(str(model_path), str(calib_dir))
    if split_file:
        return split_sets(calib_dir, split_file, spec_size, n_calib, n_held)
    return folder_sets(calib_dir, spec_size, n_calib, n_held or DEFAULT_HELD, held_dir)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _build_one(exporter, deploy, spec: ExportSpec, recipe, folder, reference, held, source: dict) -> dict:
    """Build one recipe, walking its ladder of forms (``recipes.ladder``: full int8, keep-float, dynamic range), each
    validated on the held-out images: the first form that passes ends the walk, except one whose size grows with its
    steps (keep-float), after which the later forms are tried too and the smallest that passes is kept. Returns the
    kept form's record (or the last failure's), with every form tried and its numbers under ``int8_form``."""
    from egeunet.export.recipes import ladder

    rungs = ladder(recipe, spec.int8_recipe)
    name = f"egeunet_{recipe.name}{exporter.config.suffix}"
    tried: list[dict] = []
    best, best_rung, best_row = None, None, None
    unreachable = False  # a drift budget was not met with every layer float: a stricter one cannot be either
    for rung in rungs:
        if best_rung is not None and (not best_rung.grows or rung.name == best_rung.name):
            continue
        if unreachable and rung.disagreement_share is not None:
            continue
        form, form_spec = rung.form(recipe, spec)
        record = _build_form(exporter, deploy, form_spec, form, folder, reference, held, source)
        tried.append(_rung_row(rung.name, form_spec, record))
        unreachable = unreachable or (record.get("int8_drift_budget") or {}).get("met") is False
        if not record["kept"]:
            continue
        if best is None or record["bytes"] < best["bytes"]:
            if best is not None:
                folder.discard(f"{best_rung.name}-{name}")
                best_row["kept"] = False
            best, best_rung, best_row = record, rung, tried[-1]
            best_row["kept"] = True
            os.replace(folder.staged(name), folder.staged(f"{rung.name}-{name}"))  # the next form is built at name
        else:
            folder.discard(name)
            tried[-1]["kept"] = False
    if best is not None:
        os.replace(folder.staged(f"{best_rung.name}-{name}"), folder.staged(name))
        record = best
    if not recipe.static:
        return record
    record["int8_form"] = {"rung": None if best_rung is None else best_rung.name, "choice": spec.int8_recipe,
                           "ladder": [r.name for r in rungs], "tried": tried, "why": _ladder_why(tried)}
    if best is None and len(tried) > 1:
        optional = _OPTIONAL if recipe.optional else ""
        record["error"] = f"gate failed for every int8 form: {_ladder_why(tried)}{optional}"
    return record


_OPTIONAL = "; optional artifact: the export still succeeds"


def _rung_row(name: str, spec: ExportSpec, record: dict) -> dict:
    """One ladder form's line in the manifest: its gate numbers, size, drift budget and float layers, or its error."""
    v = record.get("validation") or {}
    budget = record.get("int8_drift_budget") or {}
    size = record.get("bytes", record.get("bytes_tried"))
    row = {"rung": name, "passed": record["kept"],
           **{k: v[k] for k in ("agreement", "iou_drop_points", "images") if v.get(k) is not None},
           **({"bytes": size} if size is not None else {}),
           **({"drift_budget": spec.int8_drift_budget} if spec.int8_drift_budget is not None else {}),
           **({"kept_float": len(budget["kept_float"])} if "kept_float" in budget else {})}
    return row if record["kept"] else {**row, "error": record["error"]}


def _ladder_why(tried: list[dict]) -> str:
    """In one line: the form kept, the forms that failed before it (with their numbers), passing forms not kept."""
    def numbers(row: dict) -> str:
        parts = [f"agreement {row['agreement']:.4f}"] if "agreement" in row else []
        parts += [f"IoU drop {row['iou_drop_points']:.2f} points"] if "iou_drop_points" in row else []
        parts += [f"budget {row['drift_budget']:g}"] if "drift_budget" in row else []
        parts += [f"{row['kept_float']} layers float"] if "kept_float" in row else []
        parts += [f"{row['bytes']:,} B"] if "bytes" in row and row["passed"] else []
        return ", ".join(parts) or row.get("error", "")

    kept = [r for r in tried if r.get("kept")]
    failed = "; ".join(f"{r['rung']} ({numbers(r)})" for r in tried if not r["passed"])
    if not kept:
        return failed
    larger = "; ".join(f"{r['rung']} ({numbers(r)})" for r in tried if r["passed"] and not r["kept"])
    return (f"took {kept[0]['rung']} ({numbers(kept[0])})" + (f"; missed the gate: {failed}" if failed else "")
            + (f"; passed but larger: {larger}" if larger else ""))


def _build_form(exporter, deploy, spec: ExportSpec, recipe, folder, reference, held, source: dict) -> dict:
    """Export, validate and describe one form of a recipe; returns its record (``kept`` says whether its gate passed)."""
    name = f"egeunet_{recipe.name}{exporter.config.suffix}"
    staged = folder.staged(name)
    record = {"format": exporter.config.name, "precision": recipe.precision, "variant": recipe.name,
              "method": recipe.method, "recipe": recipe.describe(), "file": name}
    start = time.perf_counter()
    try:
        exporter.export(deploy, spec, staged, recipe)
        record["export_seconds"] = round(time.perf_counter() - start, 1)
        record["validation"] = exporter.validate(staged, reference, held, spec, recipe)
        info = exporter.describe(staged)
    except Exception as exc:  # a converter crash fails this artifact, not the whole run (named in the manifest)
        folder.discard(name)
        error = _one_line(exc) if isinstance(exc, EGEUNetError) else f"conversion failed: {type(exc).__name__}: {_one_line(exc)}"
        return {**record, "kept": False, "optional": recipe.optional, "error": error}
    from egeunet.runtime.artifacts import file_digest

    size, sha = file_digest(staged)
    validation = record["validation"]
    budget = info.get("int8_drift_budget") or {}
    if recipe.static and (budget.get("met") is False or not (info.get("quantization") or {}).get("int8_ops")):
        folder.discard(name)  # a search that ended with every layer float built a float file, whatever its gate says
        why = f"drift budget {budget['budget']:g} not met" if budget.get("met") is False else "no op left in int8"
        return {**record, "kept": False, "optional": recipe.optional, "bytes_tried": size,
                **({"int8_drift_budget": budget} if budget else {}), "error": f"not an int8 form: {why}"}
    if not validation["passed"]:
        folder.discard(name)
        why = "; ".join(validation.get("reasons", [])) or validation["gate"]
        hint = "" if validation.get("firm", True) else " (not a firm decision: more held-out images, --n-held, would settle it)"
        return {**record, "kept": False, "optional": recipe.optional, "bytes_tried": size,
                **({"int8_drift_budget": budget} if budget else {}),
                "error": f"gate failed: {why}{hint}{_OPTIONAL if recipe.optional else ''}"}
    return {**record, "kept": True, "bytes": size, "sha256": sha, "source": source,
            "inputs": info["inputs"], "outputs": info["outputs"], "layout": spec.layout,
            "baked_preprocess": spec.bake_preprocess, "ops": info["ops"], "op_counts": info["op_counts"],
            "quantization": info.get("quantization"), "contract": info.get("contract"),
            **({"int8_drift_budget": budget} if budget else {}),
            **({"integer_only": info["integer_only"]} if "integer_only" in info else {}),
            **({"size_breakdown": info["size_breakdown"]} if "size_breakdown" in info else {})}


def _golden(out: Path, listed: list[dict]) -> dict:
    """Golden vectors for the phone/web demos (``egeunet.golden``) of the listed artifacts of the formats they run
    (``FileFormat.golden``: ONNX and TFLite)."""
    from egeunet.export.manifest import GOLDEN_FILES
    from egeunet.golden import for_demos, golden_formats

    files = [out / r["file"] for r in listed if for_demos(r["file"])]
    if not files:
        return {"written": False, "reason": f"no {' or '.join(golden_formats())} artifact to run"}
    try:
        from egeunet.golden import write_golden

        folder = write_golden(out, files)
    except Exception as exc:  # golden vectors are an extra for the demos: never lose the manifest over them
        return {"written": False, "reason": f"egeunet.golden failed: {type(exc).__name__}: {_one_line(exc)[:200]}"}
    return {"written": True, "folder": folder.name, "index": f"{folder.name}/index.json", "files": GOLDEN_FILES}


def _load(model_path: str | Path):
    from egeunet.checkpoint import load_model

    try:
        return load_model(model_path, with_meta=True)
    except EGEUNetError:
        raise
    except Exception as exc:  # torch's unpickler raises e.g. KeyError on a text file
        raise EGEUNetError(f"{model_path}: not a model checkpoint ({type(exc).__name__}: {str(exc)[:100]})") from None


def export_all(model_path: str | Path, out: str | Path, *, spec: ExportSpec | None = None,
               formats: str | Sequence[str] | None = None, precisions: str | Sequence[str] = PRECISIONS,
               calib_dir: str | Path | None = None, n_calib: int = 64, held_dir: str | Path | None = None,
               n_held: int | None = None, int8_io: bool = False, golden: bool = True, progress: bool = True) -> dict:
    """Export ``model_path`` to every format x recipe under ``out``; returns the manifest (also OUT/manifest.json).

    ``spec``: what every format is asked for (``ExportSpec``: size, layout, baked preprocessing, calibration method,
    gates, int8 drift budget and recipe); its ``size`` None takes the checkpoint's, its ``gates`` are merged over
    ``default_gates()``, its ``calibration`` is replaced by the images chosen here. ``formats``: default every export
    format (``list_formats``). ``n_held``: held-out images (default: the test part of the model's recorded split when
    ``calib_dir`` is its training data, else 32). ``spec.int8_drift_budget``: ONNX int8 keeps its most sensitive
    layers in float until mask agreement with fp32 on the calibration images is at least this fraction.
    ``spec.int8_recipe``: "ladder" tries each int8 recipe's forms in turn (full int8, the most sensitive layers kept
    float, dynamic range; ``recipes.ladder``) and keeps the smallest that passes its gate (failing only when none
    does); "full", "keep-float" or "dynamic" builds only that form.

    Raises ``ExportFailed`` (after writing the manifest) when any artifact failed, ``EGEUNetError`` for bad input.
    """
    from egeunet.model.deploy import deploy_form
    from egeunet.export.folder import ExportFolder
    from egeunet.preprocess import preprocess
    from egeunet.runtime.artifacts import file_digest
    from egeunet.versions import library_versions

    spec = spec or ExportSpec()
    formats = parse_list(list_formats() if formats is None else formats, tuple(list_formats()), "format")
    precisions = parse_list(precisions, PRECISIONS, "precision")
    if int8_io and "int8" not in precisions:
        raise EGEUNetError("--int8-io needs int8 in --precisions")
    if int8_io and spec.int8_recipe == "dynamic":
        raise EGEUNetError("--int8-recipe dynamic has float input and output: it cannot be combined with --int8-io")
    model, meta = _load(model_path)
    spec = spec.with_(size=int(spec.size or meta.get("input_size", 256)), gates={**default_gates(), **spec.gates})
    with ExportFolder(out) as folder:
        calib, held = _image_sets(spec.size, calib_dir, held_dir, n_calib, n_held, model_path)
        spec = spec.with_(calibration=calib)
        reference = reference_probs(model, held.images)
        fit = model_fit(reference, held.masks)
        if fit is not None and fit.get("note"):
            warnings.warn(fit["note"], stacklevel=1)
        rounding, fp32_reference, few = None, (reference, held), held.subset(0, ROUNDING_IMAGES)
        if {"fp32", "fp16"} & set(precisions):  # float64 passes only where a float gate uses them
            exact = float64_probs(model, preprocess(few.images, spec.size))
            rounding = float(np.abs(reference[:len(few)] - exact).max())
            spec = spec.with_(gates={**spec.gates, **{p: fp32_gate(spec.gates[p], rounding) for p in ("fp32", "fp16")}})
            fp32_reference = (exact, few)  # fp32 artifacts are judged against the exact function
        int8_reference, int8_source = (_int8_reference(meta, held.images, reference) if "int8" in precisions
                                       else (reference, None))
        deploy = deploy_form(model, spec.size, spec.bake_preprocess, spec.nhwc)
        source = {"path": str(Path(model_path).resolve()), "sha256": file_digest(model_path)[1]}
        exporters = {f: get_format(f) for f in formats}  # one run's exporters: their caches die with the run
        jobs = [(exporters[f], r) for f in formats for p in precisions for r in exporters[f].recipes(p, spec, int8_io)]
        manifest = {
            "format": "egeunet-export-manifest", "version": 2,
            "model": {**source, "source": meta.get("source"), "config": model.config.to_dict()},
            "input_size": spec.size, "layout": spec.layout, "baked_preprocess": spec.bake_preprocess,
            "calibration": {**calib.describe(), "method": spec.calib_method},
            "held_out": {**held.describe(), "images_overlap_calibration": bool(set(calib.ids) & set(held.ids)),
                         "model_fit": fit},
            "gates": {p: vars(g) for p, g in spec.gates.items()},
            "int8_reference": int8_source,
            "fp32_rounding": None if rounding is None else {
                "max_abs_dprob_fp32_vs_float64": rounding, "images": min(ROUNDING_IMAGES, len(held.images)),
                "rule": f"fp32 artifacts are compared with the model in float64 on these images: max |dprob| <= "
                        f"max(the tolerance, {ROUNDING_FACTOR:g} x PyTorch fp32's own distance, this)"},
            "fp16_reference": None if "fp16" not in precisions else {
                "agreement": "with fp32 PyTorch", "images": len(few.images),
                "max_abs_dprob": "against the model with each file's own float16 weights, computed in float64 (limit "
                                 "as fp32's, fp32_rounding); float16_weights: the Conv2d modules of the deploy form "
                                 "the format converts whose weights it rounds (null: not known, not checked)",
                "float16_weights": {e.config.name: r.float16_weights for e, r in jobs if r.precision == "fp16"}},
            "int8_drift_budget": None if spec.int8_drift_budget is None else {
                "budget": spec.int8_drift_budget,
                "applies_to": "ONNX int8 and full-int8 TFLite; CoreML int8 (weights only) and dynamic-range TFLite ignore it"},
            "artifacts": [], "failed": [], "complete": False,
            "versions": library_versions(),
        }
        folder.write(manifest)
        for exporter, recipe in show_progress(jobs, desc="exporting", unit="artifact", disable=not progress):
            judged_by = ((fp16_reference(model, spec, exporter.config.name, recipe, few, reference), few)
                         if recipe.precision == "fp16" else
                         {"fp32": fp32_reference, "int8": (int8_reference, held)}.get(recipe.precision, (reference, held)))
            record = _build_one(exporter, deploy, spec, recipe, folder, *judged_by, source)
            if record["kept"]:
                folder.accept(record["file"], record, manifest)
            else:
                manifest["failed"].append(record)
                folder.write(manifest)
        manifest["golden"] = _golden(folder.out, list(folder.entries.values())) if golden else {
            "written": False, "reason": "not requested"}
        manifest["complete"] = True
        folder.write(manifest)
    required = [r for r in manifest["failed"] if not r.get("optional")]
    if required:
        names = "; ".join(f"{r['file']}: {r['error']}" for r in required)
        raise ExportFailed(f"{len(required)} of {len(jobs)} artifacts failed and were not kept ({names})", manifest)
    return manifest


FIT_MIN_MIOU = 0.3  # below this pooled mIoU on the held-out masks, the gate images say little about the model


def model_fit(reference: np.ndarray, masks: np.ndarray | None) -> dict | None:
    """How well the fp32 model segments the held-out images (pooled mIoU against their masks; None without masks),
    with a note when it is under ``FIT_MIN_MIOU``: then the gates compare artifacts on images the model does not
    understand (e.g. the authors' ISIC weights on the synthetic sample), which says little about real use."""
    from egeunet.accuracy import truth_metrics

    if masks is None or not len(masks):
        return None
    miou = truth_metrics(reference, masks)["miou"]
    fit = {"miou": round(float(miou), 4), "images": len(masks)}
    if miou < FIT_MIN_MIOU:
        fit["note"] = (f"the fp32 model reaches only {miou:.1%} mIoU on the {len(masks)} held-out images: they may not "
                       "fit this model, so its gates say little about real use; pass --held-out (and --calib) images "
                       "like the ones it will see")
    return fit


def summary_table(manifest: dict) -> str:
    """Plain-text table of every artifact: bytes, gate numbers (on how many images) and verdict; why an artifact was
    not kept as a numbered footnote below it (a column would be hundreds of characters wide)."""
    rows = [("file", "bytes", "max|d|", "agree", "IoU drop pts", "images", "result")]
    footnotes: list[str] = []  # why an artifact was not kept: long, so below the table
    for r in manifest["artifacts"] + manifest["failed"]:
        v = r.get("validation", {})
        numbers = (f"{v['max_abs_dprob']:.2e}", f"{v['agreement']:.4f}", f"{v['iou_drop_points']:+.2f}",
                   str(v["images"])) if "agreement" in v else ("-", "-", "-", "-")
        if r.get("kept", True):
            form = (r.get("int8_form") or {}).get("rung")
            verdict = "ok" + (f", {form} form" if form else "") + (" (from an earlier export)"
                                                                   if r.get("from_earlier_export") else "")
        else:
            footnotes.append(textwrap.fill(f"[{len(footnotes) + 1}] {r['file']}: {r['error']}", 120,
                                           subsequent_indent="    "))
            verdict = f"{'not kept (optional)' if r.get('optional') else 'FAILED'} [{len(footnotes)}]"
        if v.get("skipped_reason"):
            verdict += f" (numeric check skipped: {v['skipped_reason']})"
        rows.append((r["file"], f"{r.get('bytes', 0):,}" if r.get("kept", True) else "-", *numbers, verdict))
    widths = [max(len(str(row[i])) for row in rows) for i in range(6)]
    table = "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row[:6], widths)) + "  " + row[6] for row in rows)
    int8 = manifest.get("int8_reference") or {}
    note = int8.get("note") or (f"int8 gated against the original model {int8['model']}" if "why" in int8 else "")
    fit = (manifest.get("held_out") or {}).get("model_fit") or {}
    forms = [f"{r['file']}: {r['int8_form']['why']}" for r in manifest["artifacts"] + manifest["failed"]
             if len((r.get("int8_form") or {}).get("tried", ())) > 1 and not (r.get("optional") and not r.get("kept", True))]
    return ((f"warning: {fit['note']}\n" if fit.get("note") else "") + table
            + "".join(f"\n{line}" for line in footnotes) + (f"\n{note}" if note else "")
            + "".join(f"\nint8 form of {line}" for line in forms)
            + "".join(f"\n{line}" for line in kernel_lines(manifest["artifacts"] + manifest["failed"])))


def kernel_lines(records: list[dict]) -> list[str]:
    """Per int8 artifact judged on several kernel sets: each set's mask agreement and verdict (the first decides),
    then a warning per kernel fault found (the op named)."""
    lines = []
    for r in records:
        kernels = (r.get("validation") or {}).get("kernels")
        if not kernels:
            continue
        sets = [f"{name} {v['agreement']:.2%} {'ok' if v['passed'] else 'fail'}" for name, v in kernels["sets"].items()
                if v.get("agreement") is not None]
        sets += [f"{name} not run ({'kit not installed' if 'kit' in why else why[:60]})"
                 for name, why in kernels["unavailable"].items()]
        lines.append(f"kernels of {r['file']}: " + "; ".join(sets))
        lines += [f"warning: {note}" for note in kernels.get("notes", [])]
    return lines


def _int8_reference(meta: dict, images: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, dict]:
    """What int8 artifacts are gated against: for a checkpoint from ``egeunet finetune-int8``, the ORIGINAL model it
    was fine-tuned from (the masks users want kept), when that file is still there unchanged; else the checkpoint's
    own fp32 graph, with the reason recorded."""
    from egeunet.runtime.artifacts import file_digest

    training = meta.get("training") or {}
    original = training.get("original_model")
    if not original:
        return own, {"model": "this checkpoint (fp32 PyTorch)"}
    expected = (training.get("finetune_int8") or {}).get("model_sha256")
    path = Path(original)
    if not path.is_file() or file_digest(path)[1] != expected:
        why = "is missing" if not path.is_file() else "has changed since fine-tuning"
        return own, {"model": "this checkpoint (fp32 PyTorch)",
                     "note": f"fine-tuned from {original}, which {why}: int8 gated against this checkpoint instead"}
    model, _ = _load(path)
    return reference_probs(model, images), {"model": str(path), "sha256": expected,
                                            "why": "fine-tuned by egeunet finetune-int8: int8 gated against the original"}


ROUNDING_IMAGES = 64  # float64 forward passes (about 0.1-0.5 s each): the fp32 and fp16 verdicts rest on these images
ROUNDING_FACTOR = 4.0  # a correct float32 computation lands within this x PyTorch fp32's distance from float64


def float64_probs(model, x: np.ndarray) -> np.ndarray:
    """The model's probabilities N x S x S computed in float64 on canonical inputs ``x`` (N x 3 x S x S): the exact
    function, as far as any float32 computation can tell, and the same on every CPU."""
    import copy

    import torch

    exact = copy.deepcopy(model).double()
    with torch.no_grad():
        return exact(torch.from_numpy(np.asarray(x, np.float64))).numpy()[:, 0]


def fp32_rounding(model, x: np.ndarray, reference: np.ndarray) -> float:
    """Max |dprob| between fp32 PyTorch (``reference``, N x S x S) and the same model in float64 on canonical inputs
    ``x``: how much this model amplifies float32 rounding (lightly trained ones reach 1e-4, the authors' 1e-3)."""
    return float(np.abs(float64_probs(model, x) - reference).max()) if len(x) else 0.0


def fp32_gate(gate: Gate, rounding: float) -> Gate:
    """The fp32 or fp16 gate (max |dprob| judged against float64) with its max |dprob| raised to ``ROUNDING_FACTOR``
    x the model's own fp32 rounding where that is larger: float32 kernels that sum in another order (another CPU's,
    another runtime's) land up to that far from the exact function, so a tighter limit fails good artifacts by
    rounding alone."""
    if gate.max_abs_dprob is None:
        return gate
    return dataclasses.replace(gate, max_abs_dprob=max(gate.max_abs_dprob, ROUNDING_FACTOR * rounding))


def float16_model(model, size: int, fmt: str, convs: str):
    """The deploy form that format ``fmt`` converts for float files (its ``FormatConfig.float_form``'s float graph:
    onnx ``for_onnx``, tflite ``for_litert``) with the weights of its Conv2d modules named by ``convs`` (a regex)
    rounded to float16, as an fp16 file of that format stores them: the function that file is meant to compute."""
    import re

    import torch

    from egeunet.model import deploy as forms

    form = get_format(fmt).config.float_form
    if form is None:
        raise EGEUNetError(f"format {fmt} names no float deploy form (FormatConfig.float_form): its fp16 weights are "
                           "not known")
    rounded = getattr(forms, form)(forms.deploy_form(model, size), float_graph=True)
    with torch.no_grad():
        for name, module in rounded.named_modules():
            if isinstance(module, torch.nn.Conv2d) and re.fullmatch(convs, name):
                module.weight.copy_(module.weight.half())
    return rounded


def fp16_reference(model, spec: ExportSpec, fmt: str, recipe, few, fp32: np.ndarray) -> tuple:
    """What an fp16 file is judged against on the ``few`` held-out images: (fp32 PyTorch for its masks, the model with
    its own float16 weights in float64 for its max |dprob|); None in second place where the recipe does not say which
    weights it rounds (CoreML computes in float16) or the gate has no max |dprob|."""
    from egeunet.preprocess import preprocess

    fp32 = fp32[:len(few.images)]
    if recipe.float16_weights is None or spec.gates["fp16"].max_abs_dprob is None:
        return fp32, None
    rounded = float16_model(model, spec.size, fmt, recipe.float16_weights)
    return fp32, float64_probs(rounded, preprocess(few.images, spec.size))


def reference_probs(model, images: np.ndarray) -> np.ndarray:
    """fp32 PyTorch probabilities N x S x S for uint8 images at the model size (the validation reference)."""
    import torch

    from egeunet.preprocess import preprocess

    with torch.no_grad():
        return model(torch.from_numpy(preprocess(images, images.shape[1]))).numpy()[:, 0]
