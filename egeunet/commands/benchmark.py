"""`egeunet benchmark`: latency, size and accuracy drift of every artifact against fp32 PyTorch, with a CI gate."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from egeunet.commands import json_output

HELP = "benchmark a model or an export folder: latency, memory, size, accuracy and drift vs PyTorch, report"


def _threads(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2 - got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be positive integers, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: what to measure, on which data, how long, where to write, and the gate's budget."""
    from egeunet.commands import checks

    parser.epilog = ("Exit status 1, with a one-line summary on stderr, when any row failed (did not load, run, "
                     "time or verify; --keep-going lets failed rows pass) or any gate failed: --iou-drop or "
                     "--agreement broken, or not computable (no reference checkpoint, no --data, or no masks for "
                     "--iou-drop). A row whose runtime cannot run on this platform (CoreML off macOS) is skipped with "
                     "its reason, and fails only when --runtimes names that runtime. A file without "
                     "an egeunet contract is timed on random input of its own shape and dtype; it gets accuracy columns "
                     "only when its output is a mask and --data and a reference are given.")
    parser.add_argument("model", metavar="MODEL_OR_EXPORT_DIR",
                        help="a model file (.pt, .onnx, .tflite, .mlpackage, .pte) or an export folder with manifest.json")
    parser.add_argument("--data", metavar="DIR", help="dataset folder (with or without masks); without it: synthetic "
                        "input, latency, memory and size only")
    parser.add_argument("--size", type=int, help="input height = width for a file whose input leaves them dynamic "
                        "(default: the file's own)")
    parser.add_argument("--split", type=str.lower, choices=("train", "val", "test", "all"),
                        help="part of the dataset to measure accuracy on (default: test when a split is known, else all)")
    parser.add_argument("--split-file", metavar="JSON", help="split.json written by `egeunet train` (default: the one "
                        "recorded in the reference checkpoint, when it still exists)")
    parser.add_argument("--reference", metavar="CKPT", help="fp32 PyTorch checkpoint to compare with "
                        "(default: the export manifest's source checkpoint)")
    parser.add_argument("--threads", type=_threads, default=[1], help="thread counts to sweep, e.g. 1,2 (default 1)")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per measurement (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs (default 10)")
    parser.add_argument("--batch", type=int, default=1, help="batch size of model-only timings (default 1)")
    checks.add_alias(parser, "--batch-size", "--batch", deprecated=False, type=int)
    parser.add_argument("--n-held", type=int, metavar="N", help="use only the first N images of the split "
                        "(default: all of it)")
    checks.add_alias(parser, "--limit", "--n-held", deprecated=False, type=int)
    parser.add_argument("--runtimes", help="only these runtimes, comma-separated, any case (pytorch, onnxruntime, "
                        "litert, coreml, ...); a file runs on every listed runtime that can run it (default: each "
                        "file's runtimes)")
    checks.add_alias(parser, "--runtime", "--runtimes", deprecated=False)
    parser.add_argument("--ort-options", type=str.lower, choices=("both", "recommended", "default"),
                        default="both", help="ONNX Runtime session options to time each .onnx with: 'recommended' = "
                        "the options in the artifact's contract (the NCHWc layout pass off), ORT's defaults, or both, "
                        "interleaved; with both the report says which was faster here and by how much (accuracy is "
                        "measured once, with the contract's options unless 'default')")
    parser.add_argument("--iou-drop", type=float, metavar="POINTS",
                        help="gate on every row: largest allowed pooled-IoU drop versus PyTorch in percentage POINTS "
                        "(0.5 = 0.005; default: no gate; export's --int8-iou-drop is the same measure)")
    parser.add_argument("--agreement", type=float, metavar="FRACTION",
                        help="gate on every row: smallest allowed pixel agreement with PyTorch as a FRACTION "
                        "(0.99 = 99%%; default: no gate; export's --int8-agreement is the same measure)")
    checks.add_alias(parser, "--max-miou-drop", "--iou-drop", type=float)
    checks.add_alias(parser, "--min-agreement", "--agreement", type=float)
    parser.add_argument("--no-sensitivity", action="store_true", help="skip the per-layer int8 sensitivity ranking")
    parser.add_argument("--etdump", action="store_true",
                        help="also profile each .pte row per operator with ExecuTorch's ETDump over --runs runs (3 on "
                        "an emulated runtime): OUT/etdump/NAME.RUNTIME.etdp, which ExecuTorch's Inspector opens, and a "
                        "table in report.md of each operator's ms per run and share of the run (default: off)")
    parser.add_argument("--keep-going", action="store_true",
                        help="rows that fail to load, run or time do not fail the command (gates still do)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for report.md, results.csv/json, PNGs")
    json_output.add_option(parser)


def config_from_args(args: argparse.Namespace):
    """The ``BenchmarkConfig`` the options describe (shared with `egeunet demo`)."""
    from egeunet.accuracy import Gate
    from egeunet.benchmark.harness import BenchmarkConfig
    from egeunet.commands import checks
    from egeunet.errors import EGEUNetError

    for name in ("runs", "batch", "n_held", "size"):
        checks.positive(f"--{name.replace('_', '-')}", getattr(args, name))
    checks.non_negative("--warmup", args.warmup)
    if args.agreement is not None and not 0 <= args.agreement <= 1:
        raise EGEUNetError(f"--agreement is a fraction in [0, 1] (0.99 = 99%), got {args.agreement}")
    return BenchmarkConfig(threads=args.threads, runs=args.runs, warmup=args.warmup, batch=args.batch,
                           split=args.split, split_file=args.split_file, limit=args.n_held,
                           ort_options=args.ort_options, size=args.size,
                           gate=Gate(min_agreement=args.agreement, max_iou_drop_points=args.iou_drop))


def add_sensitivity(results: dict) -> None:
    """Per-layer int8 sensitivity of each int8 target (``egeunet.export.sensitivity``), added to the results.

    The command composes export's quantizer with the benchmark's numbers, so neither package imports the other.
    """
    if results["reference_probs"] is None:
        return
    from egeunet.export.sensitivity import sensitivity_for

    results["sensitivity"] = sensitivity_for(results["targets"], results["evalset"].inputs, results["reference_probs"])


PASSING = ("ok", "not exported", "skipped")  # not failures: an optional artifact the exporter did not keep, a runtime
# that cannot run on this platform and was not named in --runtimes


def failures(results: dict) -> tuple[list[str], list[str]]:
    """Names of the rows that failed (did not load, run or time) and of the rows whose gate failed."""
    rows = [r["name"] for r in results["rows"] if r["status"] not in PASSING or r.get("latency_error")]
    return rows, [r["name"] for r in results["rows"] if r.get("gate") == "fail"]


def summary(results: dict, keep_going: bool = False) -> tuple[int, str]:
    """The exit status and its one-line summary ("" when every row ran and every gate passed)."""
    rows, gates = failures(results)
    parts = [f"{len(rows)} of {len(results['rows'])} rows failed ({', '.join(rows)})" if rows else "",
             f"{len(gates)} gate{'s' * (len(gates) > 1)} failed ({', '.join(gates)})" if gates else ""]
    code = 1 if gates or (rows and not keep_going) else 0
    if not rows and not gates:
        return code, ""
    tail = " (--keep-going: failed rows do not fail the command)" if rows and keep_going else ""
    return code, f"egeunet benchmark: {', '.join(filter(None, parts))}: exit {code}{tail}"


def finish(results: dict, out: str, keep_going: bool = False) -> int:
    """Write the report, print the table and where it is, the summary line on stderr; the exit status (``summary``)."""
    from egeunet.benchmark.report import agreement_table, ort_table, table, write_report

    path = write_report(results, out)
    print(table(results))
    if agreement_table(results):
        print(f"\n{agreement_table(results)}")
    if ort_table(results):
        print(f"\nONNX Runtime session options, timed interleaved\n{ort_table(results)}")
    print(f"\nreport: {path}")
    failed = [r for r in results["rows"] if r.get("gate") == "fail"]
    for row in failed:
        print(f"gate failed: {row['name']}: {'; '.join(row['gate_reasons'])}")
    code, line = summary(results, keep_going)
    if line:
        print(line, file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """Benchmark, write the report; exit non-zero when a row failed (unless --keep-going) or a gate failed."""
    from egeunet.benchmark.harness import run_benchmark
    from egeunet.commands import checks

    from egeunet.runtime.runners import list_runtimes

    checks.output_dir("--out", args.out)
    runtimes = checks.names("--runtimes", args.runtimes, list_runtimes(), "runtime") if args.runtimes else None
    with json_output.stdout_to_stderr(args.json):
        results = run_benchmark(args.model, args.data, config_from_args(args), args.reference, runtimes)
        if not args.no_sensitivity:
            add_sensitivity(results)
        if args.etdump:
            from egeunet.benchmark.etdump import profile_rows
            from egeunet.benchmark.harness import EMULATED_RUNS

            profile_rows(results, args.out, args.runs, min(args.runs, EMULATED_RUNS))
        code = finish(results, args.out, args.keep_going)
    if args.json:  # the results.json just written, with the exit status and the summary line
        written = json.loads((Path(args.out) / "results.json").read_text())
        json_output.emit("benchmark", args.model, code, {"report": str(Path(args.out) / "report.md"), **written},
                         summary(results, args.keep_going)[1])
    return code
