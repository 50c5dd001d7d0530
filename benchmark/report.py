"""Write a benchmark's results: results.json, results.csv, PNG plots, report.md, and the table printed at the end.

Units: JSON and CSV keep metrics and agreement as fractions and Δ mIoU / Δ DSC in percentage points;
report.md and the printed table show metrics and agreement in percent.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from egeunet.atomic import atomic_write
from egeunet.benchmark.agreement import labels, percent

GT_KEYS = ("miou", "dsc", "accuracy", "sensitivity", "specificity", "image_iou_mean")

CSV_COLUMNS = (
    "name", "format", "precision", "runtime", "ort_options", "disabled_optimizers", "reference", "status", "note",
    "threads", "load_ms", "model_p50_ms", "model_p90_ms", "model_min_ms", "e2e_p50_ms", "e2e_p90_ms", "e2e_min_ms",
    "model_p50_vs_default", "e2e_p50_vs_default", "rss_base_mb",
    "peak_rss_mb", "bytes", "gzip_bytes", "weight_bytes", "graph_bytes", *GT_KEYS, "delta_miou_points",
    "delta_dsc_points", "agreement", "iou_vs_reference", "max_abs_dprob", "mean_abs_dprob", "images", "gate",
    "emulated", "method", "file",
)


IDENTITY = ("name", "file", "format", "precision", "method", "runtime", "reference", "status", "bytes", "gzip_bytes",
            "weight_bytes", "graph_bytes")  # what a timing-only line (ORT's default options) repeats of its artifact


def _timings(t: dict) -> dict:
    """The flat timing columns of one thread count's measurement."""
    extra = {"threads": t.get("threads"), "load_ms": t.get("load_ms")}
    for part, prefix in (("model", "model"), ("end_to_end", "e2e")):
        for stat in ("p50", "p90", "min"):
            extra[f"{prefix}_{stat}_ms"] = t.get(part, {}).get(f"{stat}_ms")
    return extra


def flat_rows(rows: list[dict]) -> list[dict]:
    """One flat row per artifact and thread count (one row without timings when it did not run); an ONNX artifact
    timed with ORT's default options too gets a timing-only line for them after its own (recommended) lines."""
    flat = []
    for row in rows:
        base = {k: v for k, v in row.items() if k in CSV_COLUMNS}
        base["disabled_optimizers"] = " ".join(row["disabled_optimizers"]) if "disabled_optimizers" in row else None
        base["note"] = "; ".join(filter(None, [row.get("note"), row.get("size_note"), row.get("latency_error"),
                                               "; ".join(row.get("gate_reasons") or [])]))
        default = row.get("ort_default")
        ratios = {r["threads"]: r for r in (default or {}).get("recommended_over_default", [])}
        for t in row.get("by_threads") or [{}]:
            ratio = ratios.get(t.get("threads"), {})
            flat.append({**base, **_timings(t), "model_p50_vs_default": ratio.get("model_p50"),
                         "e2e_p50_vs_default": ratio.get("end_to_end_p50")})
        for t in (default or {}).get("by_threads", []):
            flat.append({**{k: row.get(k) for k in IDENTITY}, **_timings(t), "ort_options": "default",
                         "disabled_optimizers": " ".join(default["disabled_optimizers"]),
                         "note": "timing only: accuracy measured once, with the recommended options"})
    return flat


def _runtime_label(row: dict) -> str:
    """The runtime of a flat row (``flat_rows``), and for ONNX Runtime which session options were timed:
    "onnxruntime (default options)"."""
    if not row.get("ort_options"):
        return row["runtime"]
    off = row.get("disabled_optimizers") or ""
    if row["ort_options"] == "default":
        return f"{row['runtime']} (default options)"
    return f"{row['runtime']} (recommended: {off} off)" if off else f"{row['runtime']} (recommended: ORT defaults)"


def _fmt(value, spec: str = ".2f", scale: float = 1.0, empty: str = "-") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return empty
    return format(value * scale if scale != 1.0 else value, spec)


def _status(row: dict) -> str:
    """"ok", or the status with its reason (just the reason when it already says the status)."""
    if row["status"] == "ok" or not row.get("note"):
        return row["status"]
    return row["note"] if row["note"].startswith(row["status"]) else f"{row['status']}: {row['note']}"


def _label(row: dict) -> str:
    return row["name"]


def _text_table(head: list[str], lines: list[list]) -> str:
    """Columns padded to their widest cell, a dashed rule under the head."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def table(results: dict) -> str:
    """The readable table printed at the end of a run: one line per artifact and thread count."""
    masks = results["masks"]
    head = ["artifact", "runtime", "thr", "model p50 ms", "e2e p50 ms", "load ms", "peak MB", "KB", "gzip KB",
            "mIoU %" if masks else "mIoU", "ΔmIoU pts", "agree %", "max|Δp|", "gate", "status"]
    lines = []
    for r in flat_rows(results["rows"]):
        lines.append([_label(r), _runtime_label(r), _fmt(r.get("threads"), "d"), _fmt(r.get("model_p50_ms")) + (" emulated" if r.get("emulated") else ""),
                      _fmt(r.get("e2e_p50_ms")), _fmt(r.get("load_ms"), ".0f"), _fmt(r.get("peak_rss_mb"), ".0f"),
                      _fmt(r.get("bytes"), ",.1f", 1e-3), _fmt(r.get("gzip_bytes"), ",.1f", 1e-3),
                      _fmt(r.get("miou"), ".2f", 100) if masks else "no masks", _fmt(r.get("delta_miou_points"), "+.2f"),
                      _fmt(r.get("agreement"), ".2f", 100), _fmt(r.get("max_abs_dprob"), ".3g"), r.get("gate") or "",
                      _status(r)])
    return _text_table(head, lines)


ORT_HEAD = ["artifact", "thr", "recommended options (from)", "model p50 ms default", "model p50 ms recommended",
            "model recommended / default", "e2e p50 ms default", "e2e p50 ms recommended", "e2e recommended / default"]


def ort_comparison(results: dict) -> list[list[str]]:
    """One line per ONNX artifact and thread count timed with both ORT option sets: p50s and their ratios."""
    lines = []
    for row in results["rows"]:
        default = row.get("ort_default")
        if not default:
            continue
        for rec, dft, ratio in zip(row["by_threads"], default["by_threads"], default["recommended_over_default"]):
            lines.append([row["name"], rec["threads"],
                          f"{' '.join(row['disabled_optimizers'])} off ({row['recommended_from']})",
                          _fmt(dft["model"]["p50_ms"]), _fmt(rec["model"]["p50_ms"]), _fmt(ratio["model_p50"], ".2f") + "x",
                          _fmt(dft["end_to_end"]["p50_ms"]), _fmt(rec["end_to_end"]["p50_ms"]),
                          _fmt(ratio["end_to_end_p50"], ".2f") + "x"])
    return lines


def ort_table(results: dict) -> str:
    """The ORT options comparison as printed text ("" when no ONNX artifact was timed both ways)."""
    lines = ort_comparison(results)
    return _text_table(ORT_HEAD, lines) if lines else ""


def agreement_lines(results: dict) -> tuple[list[str], list[list[str]]]:
    """The agreement matrix as a head and lines: number, "target @runtime", then its agreement % with each target,
    columns numbered as the lines are."""
    matrix = results["agreement"]
    names = labels(matrix)
    head = ["#", "target", *map(str, range(1, len(names) + 1))]
    return head, [[str(i), name, *("-" if i == j else percent(a, 3) for j, a in enumerate(row, 1))]
                  for i, (name, row) in enumerate(zip(names, matrix["agreement"]), 1)]


def agreement_table(results: dict) -> str:
    """The agreement matrix as printed text, with the images it rests on ("" with fewer than two targets that ran)."""
    matrix = results["agreement"]
    if len(matrix["names"]) < 2:
        return ""
    return (f"mask agreement % between targets, {matrix['images']} images ({matrix['pixels']:,} pixels per pair)\n"
            + _text_table(*agreement_lines(results)))


def _span(interval, scale: float = 1.0, spec: str = ".2f") -> str:
    """A 95% interval as "lo..hi" (empty when none was computed)."""
    return "" if not interval else f"{format(interval[0] * scale, spec)}..{format(interval[1] * scale, spec)}"


def _md_table(head: list[str], lines: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(map(str, line)) + " |" for line in lines)])


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _plots(results: dict, out: Path) -> dict[str, str]:
    """Draw every figure; returns {purpose: file name} for the markdown."""
    from egeunet.benchmark import plots

    files: dict[str, str] = {}
    ran = [r for r in results["rows"] if r["status"] == "ok" and r.get("by_threads") and not r.get("emulated")]
    score_key = "miou" if results["masks"] else "agreement"
    points = [{"label": r["name"], "latency_ms": r["by_threads"][0]["model"]["p50_ms"],
               "score": 100 * r[score_key], "bytes": r["bytes"]} for r in ran if r.get(score_key) is not None]
    if points:
        ylabel = "mIoU (%, pooled)" if results["masks"] else "pixel agreement with PyTorch (%) - no masks"
        plots.latency_vs_accuracy(points, out / "latency_vs_miou.png", ylabel)
        files["figure1"] = "latency_vs_miou.png"
    sized = [{"label": r["name"], "bytes": r["bytes"], "weight_bytes": r.get("weight_bytes")}
             for r in results["rows"] if r.get("bytes")]
    if sized:
        plots.size_bars(sized, out / "sizes.png")
        files["sizes"] = "sizes.png"
    matrix = results["agreement"]
    if len(matrix["names"]) >= 2:
        size = "x".join(map(str, matrix["image_size"]))
        plots.agreement_heatmap(labels(matrix), matrix["agreement"],
                                f"mask agreement % ({matrix['images']} images, {size} px)", out / "agreement.png")
        files["agreement"] = "agreement.png"
    evalset = results["evalset"]
    for name, worst in results["worst"].items():
        index = worst["index"]
        images = np.clip(evalset.inputs[index].transpose(0, 2, 3, 1), 0, 255).astype(np.uint8)
        columns = {"PyTorch": results["reference_probs"][index] >= 0.5, name: worst["probs"] >= 0.5,
                   "ground truth" if evalset.masks is not None else "ground truth: no masks":
                   evalset.masks[index] if evalset.masks is not None else None}
        titles = [f"{evalset.ids[i]} agree {100 * a:.2f}%" for i, a in zip(index, worst["agreement"])]
        files[f"overlay:{name}"] = f"worst_{_slug(name)}.png"
        plots.overlay_grid(images, columns, titles, out / files[f"overlay:{name}"])
    return files


def _markdown(results: dict, files: dict[str, str]) -> str:
    env, rows, masks = results["environment"], results["rows"], results["masks"]
    matrix_text = agreement_table(results)
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v)
    parts = [
        "# egeunet benchmark", "",
        f"Model: `{results['model']}`; reference: `{results['reference'] or 'none (drift not measured)'}`; "
        f"data: `{results['data']}` ({results['images']} images, {results['split']}"
        f"{'' if masks else '; no masks: ground-truth metrics say no masks'}).", "",
        "## Environment", "",
        f"- CPU: {env['cpu']} ({env['machine']}), {env['cores_usable']} usable of {env['cores_logical']} logical cores",
        f"- OS: {env['os']}; Python {env['python']}", f"- Libraries: {libs}", "",
        f"Latency: {results['config']['warmup']} warm-up then {results['config']['runs']} timed runs, batch "
        f"{results['config']['batch']}; model-only = `predict` on a preprocessed batch; end-to-end = decode JPEG + "
        "preprocess + model + threshold. Each artifact is timed in its own process (peak RSS is that process's "
        "high-water mark; base is before the runtime and model load).", "",
        "## Summary", "", "```", table(results), *(["", matrix_text] if matrix_text else []), "```", "",
        "results.csv and results.json keep metrics and agreement as fractions and Δ mIoU / Δ DSC in points.", "",
    ]
    if "figure1" in files:
        parts += [f"![latency vs mIoU]({files['figure1']})", ""]
    ort_lines = ort_comparison(results)
    if ort_lines:
        parts += ["## ONNX Runtime options", "",
                  "Each ONNX artifact timed with the session options recorded in its contract (recommended) and with "
                  "ORT's defaults (no optimizer disabled), calls interleaved in one process (peak memory: the "
                  "recommended session's, read before the default one loads). Ratio below 1: the recommendation is "
                  "faster on this machine. Accuracy is measured once, with the recommended options.", "",
                  _md_table(ORT_HEAD, ort_lines), ""]
    parts += ["## Size", "", "Weights: ONNX initializers and Constant tensors, TFLite buffers, CoreML weight files, "
              "checkpoint tensors; graph: the rest of the bytes.", "",
              _md_table(["artifact", "bytes", "gzip bytes", "weight bytes", "graph bytes", "built as", "status"],
                        [[_label(r), _fmt(r.get("bytes"), ","), _fmt(r.get("gzip_bytes"), ","),
                          _fmt(r.get("weight_bytes"), ","), _fmt(r.get("graph_bytes"), ","), r.get("method") or "-",
                          _status(r)] for r in rows]), ""]
    accounted = list({r["file"]: r for r in rows if r.get("accounting")}.values())  # a file on two runtimes once
    if accounted:
        parts += ["Where the bytes go (`egeunet info FILE` prints the same): constant data by element type, and structure "
                  "(op and tensor tables, quantization records, names), in all and per op.", "",
                  _md_table(["artifact", "constant data", "by type", "structure", "ops", "structure B/op"],
                            [[_label(r), _fmt(a["constant_data_bytes"], ","),
                              ", ".join(f"{k.lower()} {v:,}" for k, v in a["constant_data_by_type"].items()),
                              _fmt(a["structure_bytes"], ","), _fmt(a["ops"], "d"), _fmt(a["structure_bytes_per_op"], ".0f")]
                             for r in accounted for a in [r["accounting"]]]), ""]
    if "sizes" in files:
        parts += [f"![sizes]({files['sizes']})", ""]
    parts += ["## Accuracy and drift versus fp32 PyTorch", "",
              "Metrics in % (pooled confusion matrix, threshold 0.5); Δ in percentage points; agreement = share of "
              "pixels whose mask decision equals PyTorch's.", "",
              _md_table(["artifact", "mIoU", "DSC", "accuracy", "sensitivity", "specificity", "ΔmIoU pts",
                         "mIoU drop 95% CI", "ΔDSC pts", "agreement %", "agreement 95% CI", "images", "max abs Δprob",
                         "mean abs Δprob", "gate"],
                        [[_label(r), *(_fmt(r.get(k), ".2f", 100, "no masks" if not masks else "-") for k in GT_KEYS[:5]),
                          _fmt(r.get("delta_miou_points"), "+.3f"), _span(r.get("miou_drop_interval"), 1, ".2f"),
                          _fmt(r.get("delta_dsc_points"), "+.3f"),
                          _fmt(r.get("agreement"), ".3f", 100), _span(r.get("agreement_interval"), 100, ".3f"),
                          _fmt(r.get("images"), "d"), _fmt(r.get("max_abs_dprob"), ".3g"),
                          _fmt(r.get("mean_abs_dprob"), ".3g"),
                          " ".join(filter(None, [r.get("gate"), "; ".join(r.get("gate_reasons", []))])) or "-"]
                         for r in rows]), ""]
    gate = results["config"]["gate"]
    if any(v is not None for v in gate.values()):
        parts += [f"Gate: mIoU drop at most {gate['max_iou_drop_points']} points, agreement at least "
                  f"{gate['min_agreement']} (fraction), on the {results['images']} images above (95% intervals: "
                  "bootstrap over images); an artifact that fails to load or run, or a limit that cannot be "
                  "computed (no reference, no masks), fails it.", ""]
    if "agreement" in files:
        matrix = results["agreement"]
        parts += ["## Agreement matrix", "",
                  f"Every target that ran, fp32 PyTorch included, against every other: the share of pixels (%) whose "
                  f"mask decision (probability >= 0.5) is the same in both, pooled over the same {matrix['images']} "
                  f"images ({matrix['pixels']:,} pixels per pair); column n is target n. "
                  "results.json keeps the fractions and the differing pixel counts.", "",
                  _md_table(*agreement_lines(results)), "", f"![agreement matrix]({files['agreement']})", ""]
    for key, name in files.items():
        if key.startswith("overlay:"):
            parts += [f"### Worst images: {key[8:]} (PyTorch | artifact | ground truth)", "", f"![{key[8:]}]({name})", ""]
    for sens in results["sensitivity"]:
        parts += [f"## Per-layer int8 sensitivity: {sens['artifact']}", ""]
        if "ranking" in sens:
            parts += [f"Each of {len(sens['ranking'])} layers quantized alone (ORT static QDQ, per-channel) in "
                      f"{sens['source']}, scored on {sens['images']} images against PyTorch. {sens['note']}", "",
                      _md_table(["layer", "weights", "agreement %", "mean abs Δprob", "max abs Δprob"],
                                [[f"`{s['layer']}`", s["weights"], _fmt(s["agreement"], ".3f", 100),
                                  _fmt(s["mean_abs_dprob"], ".3g"),
                                  _fmt(s["max_abs_dprob"], ".3g")] for s in sens["ranking"][:15]]), ""]
        else:
            parts += [sens["note"], ""]
    return "\n".join(parts)


def _jsonable(results: dict) -> dict:
    """The results without arrays: worst images as ids and agreements."""
    out = {k: v for k, v in results.items() if k not in ("evalset", "worst", "reference_probs", "targets")}
    ids = results["evalset"].ids
    out["worst"] = {name: [{"id": ids[i], "agreement": a} for i, a in zip(w["index"], w["agreement"])]
                    for name, w in results["worst"].items()}
    return out


def write_report(results: dict, out: str | Path) -> Path:
    """Write report.md, results.csv, results.json and the PNGs into ``out``; returns the report.md path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = _plots(results, out)
    text = json.dumps(_jsonable(results), indent=1, default=float) + "\n"
    atomic_write(out / "results.json", lambda tmp: Path(tmp).write_text(text))

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(flat_rows(results["rows"]))

    atomic_write(out / "results.csv", write_csv)
    markdown = _markdown(results, files) + "\n"
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(markdown))
    return out / "report.md"
