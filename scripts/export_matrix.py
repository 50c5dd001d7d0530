"""The default export on several models and two CPUs' kernels: what it keeps, which int8 form, how close, which faults.

    python scripts/export_matrix.py --data DIR --work DIR [--demo-model PT] [--authors PTH] [--formats onnx,tflite]

Models: the demo model (``--demo-model``, else trained here like ``egeunet demo``: 12 epochs, seed 0), one trained with
another seed and fewer epochs (seed 1, 4 epochs), two Table 2 variants (baseline+ghpa, no-mask; 6 epochs) and the
authors' released weights (``--authors``, default ``../shared/spec/official-reference/best.pth``). Each runs
``egeunet export MODEL --calib DATA --n-calib 32`` (every precision) twice: with this machine's default kernels and with
another CPU family's PyTorch kernels (``scripts/other_kernels.env``); in both, int8 files are judged on every kernel
set of their runtime (``egeunet.runtime.kernel_sets``: reference kernels, this x86 CPU's, the aarch64 ones phones run).
Trained models and exports are kept under ``--work`` (a rerun reuses them); the table goes to stdout and
``WORK/matrix.md``, the numbers to ``WORK/matrix.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EGEUNET = [sys.executable, "-m", "egeunet.cli"]
TRAINED = {  # name -> egeunet train options
    "demo": ["--epochs", "12", "--seed", "0"],
    "seed1-4ep": ["--epochs", "4", "--seed", "1"],
    "baseline+ghpa": ["--epochs", "6", "--seed", "0", "--variant", "baseline+ghpa"],
    "no-mask": ["--epochs", "6", "--seed", "0", "--variant", "no-mask"],
}
ENVS = ("default", "other")
HEADER = ["| model | kernels | exit | s | artifact | result | agreement [95% CI] | IoU drop pts [95% CI] | "
          "per kernel set; faults |", "|" + "---|" * 9]


def other_kernels() -> dict[str, str]:
    """The variables of scripts/other_kernels.env."""
    lines = (ROOT / "scripts" / "other_kernels.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in (raw.strip() for raw in lines) if line and not line.startswith("#"))


def train(name: str, data: Path, work: Path) -> Path:
    """A trained model's best.pt (reused when it exists)."""
    run = work / "runs" / name
    if not (run / "best.pt").exists():
        subprocess.run([*EGEUNET, "train", "--data", str(data), "--out", str(run), "--no-progress", *TRAINED[name]],
                       check=True)
    return run / "best.pt"


def export(model: Path, data: Path, out: Path, formats: str, env: str) -> dict:
    """One default export (reused when its manifest is complete): exit code, seconds and manifest."""
    done = out / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    variables = {**os.environ, **(other_kernels() if env == "other" else {})}
    start = time.perf_counter()
    run = subprocess.run([*EGEUNET, "export", str(model), "--out", str(out), "--formats", formats, "--calib", str(data),
                          "--n-calib", "32", "--no-golden"], env=variables, capture_output=True, text=True)
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    result = {"exit": run.returncode, "seconds": round(time.perf_counter() - start), "manifest": manifest,
              "stderr_tail": run.stderr.strip().splitlines()[-3:]}
    done.write_text(json.dumps(result))
    return result


def _interval(validation: dict, key: str, scale: float) -> str:
    low, high = validation.get(f"{key}_interval") or (None, None)
    return f" [{low * scale:.2f}, {high * scale:.2f}]" if low is not None else ""


def rows(model: str, env: str, result: dict) -> list[str]:
    """Markdown rows: one per int8 artifact, plus one for the fp32/fp16 verdicts."""
    manifest = result["manifest"]
    records = manifest.get("artifacts", []) + manifest.get("failed", [])
    fit = (manifest.get("held_out") or {}).get("model_fit") or {}
    head = f"| {model} | {env} | {result['exit']} | {result['seconds']} |"
    floats = [f"{r['file'].split('_', 1)[1]} {'ok' if r.get('kept') else 'FAIL'}" for r in records
              if r["precision"] in ("fp32", "fp16")]
    out = [f"{head} fp32/fp16 | {', '.join(floats)} | | | mIoU of fp32 on held-out: {fit.get('miou', '-')} |"]
    for r in records:
        if r["precision"] != "int8":
            continue
        v = r.get("validation") or {}
        kernels = v.get("kernels") or {}
        faults = "; ".join(f"{f['kernel_set']}: {f['first']['op']}" for f in kernels.get("faults", []))
        per_set = ", ".join(f"{name.split('/')[1]} {s['agreement']:.2%}" for name, s in kernels.get("sets", {}).items()
                            if s.get("agreement") is not None)
        form = (r.get("int8_form") or {}).get("rung") or ""
        kept = "kept" if r.get("kept") else ("not kept (optional)" if r.get("optional") else "FAILED")
        agreement = (f"{v['agreement']:.2%}{_interval(v, 'agreement', 100)}" if v.get("agreement") is not None else "-")
        drop = f"{v['iou_drop_points']:+.2f}{_interval(v, 'iou_drop', 1)}" if v.get("iou_drop_points") is not None else "-"
        out.append(f"{head} {r['file']} | {f'{kept} {form}'.strip()} | {agreement} | {drop} | "
                   f"{per_set}{'; FAULT ' + faults if faults else ''} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (e.g. from egeunet sample-data)")
    parser.add_argument("--work", type=Path, required=True, help="folder for trained models, exports and the table")
    parser.add_argument("--demo-model", type=Path, help="the demo's checkpoint (default: train it here)")
    parser.add_argument("--authors", type=Path, default=ROOT.parent / "shared" / "spec" / "official-reference" / "best.pth")
    parser.add_argument("--formats", default="onnx,tflite", help="CoreML is left out by default: it cannot run here")
    parser.add_argument("--envs", default=",".join(ENVS), help="default, other (scripts/other_kernels.env) or both")
    parser.add_argument("--models", default=",".join([*TRAINED, "authors"]), help="which of the models to export")
    parser.add_argument("--table-only", action="store_true", help="print the table of the exports already in --work")
    args = parser.parse_args()
    if args.table_only:
        table = HEADER + [row for env in ENVS for done in sorted((args.work / "exports" / env).glob("*/result.json"))
                          for row in rows(done.parent.name, env, json.loads(done.read_text()))]
        print("\n".join(table))
        return
    chosen = args.models.split(",")
    models = {name: (args.demo_model if name == "demo" and args.demo_model else None) for name in TRAINED
              if name in chosen}
    models = {name: path or train(name, args.data, args.work) for name, path in models.items()}
    if "authors" in chosen and args.authors.exists():
        models["authors"] = args.authors
    table = list(HEADER)
    results = {}
    for env in args.envs.split(","):
        for name, path in models.items():
            result = export(path, args.data, args.work / "exports" / env / name, args.formats, env)
            results[f"{env}/{name}"] = {k: v for k, v in result.items() if k != "manifest"}
            table += rows(name, env, result)
            print("\n".join(table[-1:]), file=sys.stderr, flush=True)
    text = "\n".join(table)
    (args.work / "matrix.md").write_text(text + "\n")
    (args.work / "matrix.json").write_text(json.dumps(results, indent=1))
    print(text)


if __name__ == "__main__":
    main()
