"""The printed benchmark summary: 120 columns with long notes as footnotes, one sign for mIoU drops, status and gate in
one word, e2e below model-only flagged, ORT's contract options called recommended only when they were faster."""
from __future__ import annotations

from egeunet.benchmark.report import WIDTH, ort_table, ort_verdict, table

LONG = "not runnable here: CoreML prediction needs macOS (this is Linux); " + "a very long reason " * 12


def _timing(model: float, e2e: float) -> dict:
    return {"threads": 1, "load_ms": 5.0, "model": {"p50_ms": model}, "end_to_end": {"p50_ms": e2e}}


def _row(name: str, runtime: str, status: str = "ok", note: str = "", gate: str = "", model: float = 10.0,
         e2e: float = 13.0, drop: float | None = 0.22, **extra) -> dict:
    return {"name": name, "file": name, "format": name.rsplit(".", 1)[-1], "precision": "int8", "method": "",
            "runtime": runtime, "reference": False, "status": status, "note": note, "bytes": 123_456,
            "peak_rss_mb": 100.0, "miou": 0.8664, "miou_drop_points": drop, "agreement": 0.9981,
            "max_abs_dprob": 0.945, "gate": gate, "gate_reasons": ["agreement 0.9812 < 0.99"] if gate == "fail" else [],
            "by_threads": [_timing(model, e2e)] if status == "ok" else [], **extra}


def _onnx(name: str, contract_ms: float, default_ms: float) -> dict:
    return _row(name, "onnxruntime", model=contract_ms, ort_options="recommended",
                disabled_optimizers=["NchwcTransformer"], recommended_from="artifact contract",
                ort_default={"disabled_optimizers": [], "by_threads": [_timing(default_ms, default_ms + 3)],
                             "recommended_over_default": [{"threads": 1, "model_p50": contract_ms / default_ms,
                                                           "end_to_end_p50": 1.0}]})


def _results(rows: list[dict]) -> dict:
    return {"masks": True, "config": {"batch": 1, "threads": [1]}, "rows": rows}


def test_summary_fits_and_notes_become_footnotes():
    rows = [_row("egeunet_int8-integer.tflite", "litert", gate="fail"),
            _row("egeunet_fp16.tflite", "litert", model=12.9, e2e=12.5, drop=-0.0001, gate="pass"),
            *(_row(f"egeunet_{p}.mlpackage", "coreml", status="skipped", note=LONG) for p in ("fp32", "int8")),
            _row("corrupt.onnx", "onnxruntime", status="failed", note="onnxruntime cannot load it (INVALID_PROTOBUF)")]
    text = table(_results(rows))
    assert max(map(len, text.splitlines())) <= WIDTH
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith(("egeunet_", "corrupt"))}
    assert lines["egeunet_int8-integer.tflite"].endswith("gate fail [1]")  # never "ok" beside a failed gate
    assert "+0.22" in lines["egeunet_int8-integer.tflite"]  # positive drop = worse
    assert lines["egeunet_fp16.tflite"].endswith("gate pass") and " 0.00 " in lines["egeunet_fp16.tflite"]
    assert "12.50*" in lines["egeunet_fp16.tflite"]  # e2e below model-only is marked
    assert lines["egeunet_fp32.mlpackage"].endswith("skipped [2]") and lines["egeunet_int8.mlpackage"].endswith("[2]")
    assert lines["corrupt.onnx"].endswith("failed [3]")
    assert "* e2e below model-only (by up to 3%)" in text and "timing noise" in text
    assert "[1] agreement 0.9812 < 0.99" in text
    footnote = text[text.index("[2] not runnable here"):]
    assert "a very long reason" in footnote and footnote.count("[2]") == 1  # one footnote for both rows


def test_ort_options_named_by_what_was_faster_here():
    faster, slower = _onnx("egeunet_fp32.onnx", 9.29, 9.49), _onnx("egeunet_int8.onnx", 15.9, 15.2)
    text = table(_results([faster, slower]))
    runtimes = [line.split()[1:3] for line in text.splitlines() if line.startswith("egeunet_")]
    assert runtimes == [["ort", "recommended"], ["ort", "defaults"], ["ort", "contract"], ["ort", "defaults"]]
    comparison = ort_table(_results([faster, slower]))
    assert max(map(len, comparison.splitlines())) <= WIDTH
    assert "contract's options, by 2%" in comparison and "ORT defaults, by 5%" in comparison
    assert "NchwcTransformer off (artifact contract)" in comparison
    assert ort_verdict(1.001) == "same speed" and ort_verdict(None) == ""


def test_size_legend_covers_no_bar_or_label(tmp_path, monkeypatch):
    """sizes.png: the legend lies outside the axes (it covered the last bar's total before) and every total is inside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from egeunet.benchmark import plots

    monkeypatch.setattr(plt, "close", lambda fig: None)  # keep the figure to measure it
    bars = [{"label": f"egeunet_{p}.{f}", "bytes": b, "weight_bytes": b // 3}
            for (p, f, b) in [("fp32", "onnx", 232_802), ("int8", "tflite", 126_000), ("fp32", "mlpackage", 701_926),
                              ("int8", "mlpackage", 353_700)]]
    plots.size_bars(bars, tmp_path / "sizes.png")
    fig = plt.gcf()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    axes_box, legend_box = ax.get_window_extent(renderer), ax.get_legend().get_window_extent(renderer)
    assert not axes_box.overlaps(legend_box)
    for text in ax.texts:  # the totals written at the bar ends
        assert axes_box.x0 <= text.get_window_extent(renderer).x1 <= axes_box.x1
    plt.close(fig)
