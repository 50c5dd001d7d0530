"""`egeunet demo` end to end with tiny settings: every stage runs once, a rerun reuses them, a change rebuilds downstream."""
from __future__ import annotations

import json

from egeunet.cli import main


def test_demo_runs_every_stage_then_reuses_them(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--quick", "--n", "12", "--epochs", "1", "--formats", "onnx", "--out", str(out)]
    assert main([*args, "--precisions", "fp32"]) == 0
    first = capsys.readouterr().out
    for stage in ("data", "run", "export", "report"):
        assert f"[{stage}] building" in first
    assert (out / "run" / "best.pt").is_file() and (out / "export" / "manifest.json").is_file()
    results = json.loads((out / "report" / "results.json").read_text())
    assert results["rows"][0]["reference"] and results["rows"][0]["status"] == "ok"
    assert "egeunet_fp32.onnx" in {r["name"] for r in results["rows"]}  # kept or marked "not exported", never dropped
    assert f"report: {out / 'report' / 'report.md'}" in first
    assert "mask agreement % between targets" in first and "egeunet_fp32.onnx @onnxruntime" in first

    assert main([*args, "--precisions", "fp32"]) == 0
    second = capsys.readouterr().out
    assert "nothing rebuilt" in second and "building" not in second
    assert "best.pt (reference)" in second  # the table is printed again, the agreement matrix with it
    assert "mask agreement % between targets" in second and "egeunet_fp32.onnx @onnxruntime" in second

    assert main([*args, "--precisions", "fp16"]) == 0
    third = capsys.readouterr().out
    assert "[data] reusing" in third and "[run] reusing" in third
    assert "[export] building" in third and "[report] building" in third
    names = {r["name"] for r in json.loads((out / "report" / "results.json").read_text())["rows"]}
    assert "egeunet_fp16.onnx" in names and "egeunet_fp32.onnx" not in names
