"""`egeunet demo`: sample data -> short CPU training -> export of every format and precision -> benchmark report.

Each stage writes one folder under --out (data, run, export, report) and records its settings in
demo.json; a rerun reuses every stage whose settings are unchanged and whose inputs were not rebuilt,
so a second run only reprints the table. --force rebuilds every stage.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HELP = "the whole pipeline on the bundled synthetic sample: data, CPU training, export, benchmark, report"
STAGES = ("data", "run", "export", "report")
FULL = {"n": 200, "epochs": 12, "n_calib": 32, "runs": 30, "threads": "1"}
QUICK = {"n": 40, "epochs": 2, "n_calib": 8, "runs": 10, "threads": "1"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to write, how much data and training, which formats, --quick and --force."""
    from egeunet.runtime.formats import export_formats

    parser.add_argument("--out", default="demo-out", metavar="DIR", help="folder for every stage (default demo-out)")
    parser.add_argument("--n", type=int, help=f"synthetic images (default {FULL['n']}, --quick {QUICK['n']})")
    parser.add_argument("--epochs", type=int, help=f"training epochs (default {FULL['epochs']}, --quick {QUICK['epochs']})")
    parser.add_argument("--formats", default=",".join(export_formats()), help="export formats, any case: "
                        f"{', '.join(export_formats())} (default: all)")
    parser.add_argument("--precisions", default="fp32,fp16,int8", help="export precisions, any case "
                        "(default fp32,fp16,int8)")
    parser.add_argument("--threads", type=int, help="CPU threads: the benchmark's timings (default 1) and PyTorch's "
                        "training and export (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke run: less data and training, "
                        "every file still exported (7 minutes on 2 cores with every format); low accuracy, so int8 "
                        "gates may fail")
    parser.add_argument("--force", action="store_true", help="rebuild every stage even when its output exists")


def _settings(args: argparse.Namespace) -> dict[str, dict]:
    """Per-stage settings; a stage is rebuilt when its own or an earlier stage's settings change."""
    from egeunet.commands import checks
    from egeunet.export import list_formats
    from egeunet.export.spec import PRECISIONS

    base = QUICK if args.quick else FULL
    n, epochs = args.n or base["n"], args.epochs or base["epochs"]
    formats = ",".join(checks.names("--formats", args.formats, tuple(list_formats()), "format"))
    precisions = ",".join(checks.names("--precisions", args.precisions, PRECISIONS, "precision"))
    return {"data": {"n": n, "seed": 0}, "run": {"epochs": epochs, "seed": 0, "recipe": "training.demo_config"},
            "export": {"formats": formats, "precisions": precisions, "n_calib": base["n_calib"],
                       "held_out": "test split"},
            "report": {"runs": base["runs"], "threads": str(args.threads or base["threads"]), "split": "test"}}


def _plan(out: Path, settings: dict[str, dict], force: bool) -> list[str]:
    """The stages to (re)build: the first stage whose settings changed or whose output is missing, and all after it."""
    recorded = {} if force else _recorded(out)
    done = {"data": out / "data", "run": out / "run" / "test_metrics.json", "export": out / "export" / "manifest.json",
            "report": out / "report" / "report.md"}
    for i, stage in enumerate(STAGES):
        if recorded.get(stage) != settings[stage] or not done[stage].exists():
            return list(STAGES[i:])
    return []


def _clear(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)


def _recorded(out: Path) -> dict:
    """The stages demo.json records as finished; none when it is missing or unreadable (every stage is rebuilt)."""
    try:
        recorded = json.loads((out / "demo.json").read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _record(out: Path, settings: dict, stage: str) -> None:
    """Note in demo.json that ``stage`` finished with these settings."""
    from egeunet.atomic import write_bytes_atomic

    recorded = _recorded(out)
    recorded[stage] = settings[stage]
    write_bytes_atomic(out / "demo.json", (json.dumps(recorded, indent=1) + "\n").encode())


def _stage_data(out: Path, s: dict) -> None:
    from egeunet.data import write_sample_dataset

    write_sample_dataset(out / "data", s["n"], s["seed"])


def _stage_run(out: Path, s: dict) -> None:
    from egeunet.training import demo_config, train

    train(demo_config(str(out / "data"), str(out / "run"), epochs=s["epochs"], seed=s["seed"],
                      cache_dir=str(out / "cache")))


def _stage_export(out: Path, s: dict) -> None:
    """Export every format and precision, calibrated on the run's train part and gated on its test part; artifacts
    that fail their gate are listed in the manifest, not fatal."""
    from egeunet.commands.export import held_note
    from egeunet.export.api import ExportFailed, export_all, summary_table

    try:
        manifest = export_all((out / "run" / "best.pt").resolve(), out / "export", formats=s["formats"],
                              precisions=s["precisions"], calib_dir=(out / "data").resolve(), n_calib=s["n_calib"])
    except ExportFailed as exc:
        manifest = exc.manifest
        print(f"export: {exc}")
    print(summary_table(manifest))
    held_note(str(out / "export"), sys.stdout)


def _stage_report(out: Path, s: dict) -> int:
    from egeunet.benchmark.harness import BenchmarkConfig, run_benchmark
    from egeunet.commands.benchmark import add_sensitivity, finish

    config = BenchmarkConfig(threads=[int(t) for t in s["threads"].split(",")], runs=s["runs"], split=s["split"])
    results = run_benchmark(out / "export", out / "data", config)
    add_sensitivity(results)
    return finish(results, str(out / "report"))


def run(args: argparse.Namespace) -> int:
    """Run the stages that need running, then print the table and where the report is."""
    from egeunet.commands import checks

    checks.positive("--n", args.n)
    checks.positive("--epochs", args.epochs)
    checks.output_dir("--out", args.out)
    checks.torch_threads(args.threads)
    out = Path(args.out)
    settings = _settings(args)
    out.mkdir(parents=True, exist_ok=True)
    todo = _plan(out, settings, args.force)
    stages = {"data": _stage_data, "run": _stage_run, "export": _stage_export, "report": _stage_report}
    timings = {}
    for stage in STAGES:
        if stage not in todo:
            print(f"[{stage}] reusing {out / stage} (unchanged settings; --force rebuilds)")
            continue
        print(f"[{stage}] building {out / stage} ...")
        _clear(out / stage)
        start = time.perf_counter()
        stages[stage](out, settings[stage])
        timings[stage] = time.perf_counter() - start
        _record(out, settings, stage)
    if "report" not in todo:
        report = (out / "report" / "report.md").read_text()
        print(report.split("```")[1].strip() if "```" in report else "")
    spent = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in timings.items()) or "nothing rebuilt"
    print(f"\ndemo done ({spent}); report: {out / 'report' / 'report.md'}")
    return 0
