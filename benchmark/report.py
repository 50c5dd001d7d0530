"""Write a benchmark's results: results.json, results.csv, PNG plots, report.md, and the table printed at the end.

Units: JSON and CSV keep metrics and agreement as fractions and the mIoU / DSC drops from PyTorch's in percentage
points (one sign everywhere: a positive drop is worse); report.md and the printed table show metrics and agreement in
percent. The printed table fits ``WIDTH`` columns: notes become numbered footnotes under it.
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
    "peak_rss_mb", "bytes", "gzip_bytes", "weight_bytes", "graph_bytes", *GT_KEYS, "miou_drop_points",
    "dsc_drop_points", "agreement", "iou_vs_reference", "max_abs_dprob", "mean_abs_dprob", "images", "gate",
    "emulated", "method", "file",
)


WIDTH = 120  # columns the printed summary fits (a terminal, a code block in report.md)
TIMING_ONLY = "timing only: accuracy measured once, with the contract's options"

IDENTITY = ("name", "file", "format", "precision", "method", "runtime", "reference", "status", "bytes", "gzip_bytes",
            "weight_bytes", "graph_bytes")  # what a timing-only line (ORT's default options) repeats of its artifact


def _timings(t: dict) -> dict:
    """The flat timing columns of one thread count's measurement."""
    extra = {"threads": t.get("threads"), "load_ms": t.get("load_ms")}
    for part, prefix in (("model", "model"), ("end_to_end", "e2e")):
        for stat in ("p10", "p25", "p50", "p75", "p90", "min"):
            extra[f"{prefix}_{stat}_ms"] = t.get(part, {}).get(f"{stat}_ms")
    return extra


def flat_rows(rows: list[dict]) -> list[dict]:
    """One flat row per artifact and thread count (one row without timings when it did not run); an ONNX artifact
    timed with ORT's default options too gets a timing-only line for them after its own (contract's options) lines."""
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
                         "note": TIMING_ONLY})
    return flat


def ort_verdict(ratio: float | None) -> str:
    """Which ONNX Runtime options were faster in this run, from contract p50 / default p50 ("" when not measured)."""
    if ratio is None:
        return ""
    if abs(ratio - 1) < 0.005:
        return "same speed"
    if ratio < 1:
        return f"contract's options, by {100 * (1 / ratio - 1):.0f}%"
    return f"ORT defaults, by {100 * (ratio - 1):.0f}%"


def _runtime_label(row: dict, ratio: float | None) -> str:
    """The runtime of a flat row (``flat_rows``); ONNX Runtime as "ort" with the options timed: "recommended" only
    when its contract's options were faster than ORT's defaults in this run (``ratio`` = contract p50 / default p50),
    else "contract", or "defaults"."""
    if not row.get("ort_options"):
        return row["runtime"]
    if row["ort_options"] == "default":
        return "ort defaults"
    return "ort recommended" if ratio is not None and ratio < 0.995 else "ort contract"


def _signed(value: float | None, digits: int) -> str:
    """A drop with its sign ("+0.22", "-0.07"); one that rounds to zero is "0.00", never "-0.00"."""
    if value is None:
        return "-"
    text = f"{value:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


def _fmt(value, spec: str = ".2f", scale: float = 1.0, empty: str = "-") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return empty
    return format(value * scale if scale != 1.0 else value, spec)


def _status(row: dict) -> str:
    """"ok", or the status with its reason (just the reason when it already says the status)."""
    if row["status"] == "ok" or not row.get("note"):
        return row["status"]
    return row["note"] if row["note"].startswith(row["status"]) else f"{row['status']}: {row['note']}"


def _verdict(row: dict) -> str:
    """Status and gate in one word, so they cannot contradict: the gate's verdict on a row that ran, else its status."""
    return f"gate {row['gate']}" if row["status"] == "ok" and row.get("gate") else row["status"]


def _notes(row: dict) -> list[str]:
    """A flat row's notes for footnotes: its note (status reason, size and latency problems, gate reasons:
    ``flat_rows``) and emulation; none for a timing-only line."""
    if row.get("ort_options") == "default":
        return []
    emulated = row.get("emulated") and "emulated runtime: its times are an emulator's, not comparable with native rows"
    return [n for n in (row.get("note"), emulated) if n]


def _label(row: dict) -> str:
    return row["name"]


def _text_table(head: list[str], lines: list[list]) -> str:
    """Columns padded to their widest cell, a dashed rule under the head; a head cell may span lines ("a\nb")."""
    heads = [str(h).split("\n") for h in head]
    depth = max(map(len, heads))
    heads = [[""] * (depth - len(h)) + h for h in heads]  # bottom-aligned
    widths = [max(len(str(x)) for x in [*h, *col]) for h, col in zip(heads, zip(*lines))] if lines else \
        [max(map(len, h)) for h in heads]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([*(fmt([h[i] for h in heads]) for i in range(depth)), fmt(["-" * w for w in widths]),
                      *map(fmt, lines)])


def _ort_ratios(rows: list[dict]) -> dict[tuple[str, int], float]:
    """(row name, threads) -> contract p50 / default p50 of every ONNX row timed both ways."""
    return {(r["name"], ratio["threads"]): ratio["model_p50"] for r in rows
            for ratio in (r.get("ort_default") or {}).get("recommended_over_default", [])}


def table(results: dict) -> str:
    """The summary printed at the end of a run: one line per artifact and thread count, at most ``WIDTH`` columns;
    notes as numbered footnotes, one legend line per marker used."""
    masks, batch = results["masks"], results["config"].get("batch", 1)
    threads = len(results["config"].get("threads") or [1]) > 1
    ratios = _ort_ratios(results["rows"])
    head = ["artifact", "runtime", *(["thr"] if threads else []), "model\np50 ms", "e2e\np50 ms", "peak\nMB",
            "size\nKB", "mIoU\n%" if masks else "mIoU", "mIoU\ndrop", "agree\n%", "max\n|Δp|", "status"]
    notes: dict[str, int] = {}
    lines, noisy = [], []
    for r in flat_rows(results["rows"]):
        model, e2e = r.get("model_p50_ms"), r.get("e2e_p50_ms")
        below = batch == 1 and model is not None and e2e is not None and e2e < model
        if below:
            noisy.append((model - e2e) / model)
        marks = "".join(f"[{notes.setdefault(n, len(notes) + 1)}]" for n in _notes(r))
        lines.append([_label(r), _runtime_label(r, ratios.get((r["name"], r.get("threads")))),
                      *([_fmt(r.get("threads"), "d")] if threads else []), _fmt(model), _fmt(e2e) + "*" * below,
                      _fmt(r.get("peak_rss_mb"), ".0f"), _fmt(r.get("bytes"), ",.0f", 1e-3),
                      _fmt(r.get("miou"), ".2f", 100) if masks else "no masks", _signed(r.get("miou_drop_points"), 2),
                      _fmt(r.get("agreement"), ".2f", 100), _fmt(r.get("max_abs_dprob"), ".1e"),
                      f"{_verdict(r)} {marks}".rstrip()])
    legend = ["mIoU drop: points below PyTorch's mIoU (positive = worse); agree: pixels whose mask equals PyTorch's."]
    if ratios:
        legend.append("ort = onnxruntime with its contract's session options ('recommended' only where they were "
                      "faster than ORT's defaults in this run) or with ORT's defaults (timing only).")
    if noisy:
        legend.append(f"* e2e below model-only (by up to {100 * max(noisy):.0f}%): the two are timed in separate "
                      "loops, so this is timing noise; the model's time is within the e2e time.")
    legend += [f"[{n}] {text}" for text, n in notes.items()]
    return "\n".join([_text_table(head, lines), "", *(_wrap(line) for line in legend)])


def latency_spread(results: dict) -> list[list[str]]:
    """One line per timed artifact and thread count: model-only and end-to-end p50, p25-p75 and p10-p90 (ms)."""
    def span(r: dict, part: str, low: int, high: int) -> str:
        a, b = r.get(f"{part}_p{low}_ms"), r.get(f"{part}_p{high}_ms")
        return f"{a:.2f}-{b:.2f}" if a is not None and b is not None else "-"

    return [[_label(r), _fmt(r.get("threads"), "d"), _fmt(r.get("model_p50_ms")), span(r, "model", 25, 75),
             span(r, "model", 10, 90), _fmt(r.get("e2e_p50_ms")), span(r, "e2e", 25, 75), span(r, "e2e", 10, 90)]
            for r in flat_rows(results["rows"]) if r.get("model_p50_ms") is not None]


def _wrap(text: str) -> str:
    """A legend or footnote line wrapped to ``WIDTH`` columns, continuation lines indented."""
    import textwrap

    return "\n".join(textwrap.wrap(text, WIDTH, subsequent_indent="    ", break_long_words=True))


ORT_HEAD = ["artifact", "thr", "model ms\ndefaults", "model ms\ncontract", "contract /\ndefaults",
            "e2e ms\ndefaults", "e2e ms\ncontract", "faster in this run\n(model-only p50)"]


def ort_comparison(results: dict) -> list[list[str]]:
    """One line per ONNX artifact and thread count timed with both ORT option sets: p50s, their ratio and which
    options were faster in this run (``ort_verdict``)."""
    lines = []
    for row in results["rows"]:
        default = row.get("ort_default")
        if not default:
            continue
        for rec, dft, ratio in zip(row["by_threads"], default["by_threads"], default["recommended_over_default"]):
            lines.append([row["name"], rec["threads"], _fmt(dft["model"]["p50_ms"]), _fmt(rec["model"]["p50_ms"]),
                          _fmt(ratio["model_p50"], ".2f") + "x", _fmt(dft["end_to_end"]["p50_ms"]),
                          _fmt(rec["end_to_end"]["p50_ms"]), ort_verdict(ratio["model_p50"])])
    return lines


def ort_options_text(results: dict) -> str:
    """What "contract" means in the ORT comparison: the optimizers each contract turns off, and where it says so."""
    told = {f"{' '.join(r['disabled_optimizers']) or 'none'} off ({r['recommended_from']})"
            for r in results["rows"] if r.get("ort_default")}
    return (f"p50 times; contract = the session options the artifact's contract recommends: "
            f"{'; '.join(sorted(told))}")


def ort_table(results: dict) -> str:
    """The ORT options comparison as printed text ("" when no ONNX artifact was timed both ways)."""
    lines = ort_comparison(results)
    return f"{_wrap(ort_options_text(results))}\n{_text_table(ORT_HEAD, lines)}" if lines else ""


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
    head = [h.replace("\n", " ") for h in head]
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
        "results.csv and results.json keep metrics and agreement as fractions and the mIoU / DSC drops in points "
        "(positive = worse).", "",
    ]
    spread = latency_spread(results)
    if spread:
        parts += ["## Latency spread", "", "Per artifact and thread count, in ms over the timed runs: the median, the "
                  "interquartile range (p25-p75) and p10-p90. A wide range means a noisy machine: compare medians only "
                  "where ranges do not overlap.", "",
                  _md_table(["artifact", "thr", "model p50", "model p25-p75", "model p10-p90", "e2e p50",
                             "e2e p25-p75", "e2e p10-p90"], spread), ""]
    if "figure1" in files:
        parts += [f"![latency vs mIoU]({files['figure1']})", ""]
    ort_lines = ort_comparison(results)
    if ort_lines:
        parts += ["## ONNX Runtime options", "",
                  "Each ONNX artifact timed with the session options recorded in its contract and with ORT's "
                  "defaults (no optimizer disabled), calls interleaved in one process (peak memory: the contract "
                  "session's, read before the default one loads). Ratio below 1: the contract's options are faster "
                  "on this machine in this run (the summary then calls them recommended). Accuracy is measured "
                  f"once, with the contract's options. {ort_options_text(results)}.", "",
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
              "Metrics in % (pooled confusion matrix, threshold 0.5); drops in percentage points below PyTorch's "
              "(positive = worse); agreement = share of pixels whose mask decision equals PyTorch's.", "",
              _md_table(["artifact", "mIoU", "DSC", "accuracy", "sensitivity", "specificity", "mIoU drop pts",
                         "mIoU drop 95% CI", "DSC drop pts", "agreement %", "agreement 95% CI", "images",
                         "max abs Δprob", "mean abs Δprob", "gate"],
                        [[_label(r), *(_fmt(r.get(k), ".2f", 100, "no masks" if not masks else "-") for k in GT_KEYS[:5]),
                          _signed(r.get("miou_drop_points"), 3), _span(r.get("miou_drop_interval"), 1, ".2f"),
                          _signed(r.get("dsc_drop_points"), 3),
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
    parts += etdump_section(results.get("etdump", []))
    return "\n".join(parts)


def etdump_section(profiles: list[dict]) -> list[str]:
    """Report lines of ``benchmark --etdump``: per .pte row, its operators' ms per run and share (the 15 slowest)."""
    parts = []
    for prof in profiles:
        parts += [f"## Per-operator profile (ETDump): {prof['name']}", ""]
        if "error" in prof:
            parts += [f"Not recorded: {prof['error']}", ""]
            continue
        parts += [f"`{prof['file']}`: {prof['runs']} runs in {prof['runtime']} on random input, `Method::execute` {prof['execute_ms']:.2f} "
                  "ms per run (median); open it with `executorch.devtools.Inspector(etdump_path=...)` for every event. "
                  "`DELEGATE_CALL` is a delegated section as a whole; the operators inside it are XNNPACK's own.", "",
                  _md_table(["operator", "in delegate", "calls per run", "ms per run", "% of run"],
                            [[f"`{op['operator']}`", "yes" if op["delegated"] else "no", str(op["calls"]),
                              _fmt(op["ms"], ".3f"), _fmt(op["share"], ".1f", 100)] for op in prof["operators"][:15]]),
                  ""]
    return parts


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
