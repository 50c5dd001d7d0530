"""`egeunet export MODEL`: ONNX, TFLite and CoreML artifacts, each validated against PyTorch, with a manifest."""
from __future__ import annotations

import argparse
import sys

from egeunet.commands import json_output

HELP = "export a checkpoint to ONNX, TFLite and CoreML (fp32/fp16/int8), validate each, write a manifest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: formats, precisions, calibration and held-out images, layout, preprocessing, gates."""
    from egeunet.export.recipes import INT8_RECIPES
    from egeunet.export.spec import CALIBRATION_METHODS, default_gates
    from egeunet.runtime.formats import export_formats

    gates = default_gates()
    parser.add_argument("model", help="checkpoint (egeunet .pt or the authors' best/latest.pth)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the artifacts and manifest.json")
    parser.add_argument("--formats", default=",".join(export_formats()),
                        help=f"comma-separated, any case: {', '.join(export_formats())} (default: all)")
    parser.add_argument("--precisions", default="fp32,fp16,int8", help="comma-separated, any case: fp32, fp16, int8")
    parser.add_argument("--calib", metavar="DIR", help="calibration images (a dataset layout or a plain folder); "
                        "default: synthetic sample images, seed 0")
    parser.add_argument("--n-calib", type=int, default=64, help="number of calibration images (default 64)")
    parser.add_argument("--held-out", metavar="DIR", help="held-out images for validation; default: the test part of "
                        "the model's recorded split when --calib is its training data, else the last --n-held images "
                        "of --calib (never used for calibration)")
    parser.add_argument("--n-held", type=int, help="number of held-out validation images (default: the whole test "
                        "split when known, up to 256, else 32: gates on fewer images decide by noise)")
    parser.add_argument("--size", type=int, help="input size (multiple of 32); default: the checkpoint's")
    parser.add_argument("--nhwc", action="store_true", help="NHWC input and output (mobile layout)")
    parser.add_argument("--bake-preprocess", action="store_true",
                        help="graph input is uint8 RGB at the model size; the graph does the min-max stretch")
    parser.add_argument("--int8-io", action="store_true", help="full-int8 TFLite with int8 input and output")
    parser.add_argument("--calib-method", default="minmax", type=str.lower, choices=CALIBRATION_METHODS,
                        help="ONNX int8 calibration (TFLite uses min-max)")
    parser.add_argument("--fp32-tol", type=float, default=gates["fp32"].max_abs_dprob, help="fp32 gate: max |dprob|")
    parser.add_argument("--fp16-tol", type=float, default=gates["fp16"].max_abs_dprob, help="fp16 gate: max |dprob|")
    parser.add_argument("--fp16-agreement", type=float, default=gates["fp16"].min_agreement,
                        help="fp16 gate: mask agreement (fraction)")
    parser.add_argument("--int8-agreement", type=float, default=gates["int8"].min_agreement,
                        help="int8 gate: mask agreement (fraction)")
    parser.add_argument("--int8-iou-drop", type=float, default=gates["int8"].max_iou_drop_points, metavar="POINTS",
                        help="int8 gate: largest pooled-IoU drop versus PyTorch, in percentage POINTS (0.5 = 0.005)")
    parser.add_argument("--int8-drift-budget", type=float, metavar="AGREEMENT",
                        help="ONNX int8 and full-int8 TFLite: keep the most int8-sensitive convolutions in float until "
                        "mask agreement with the float graph on the calibration images is >= AGREEMENT, a fraction in "
                        "[0, 1] (e.g. 0.995); recorded in the manifest (CoreML int8 ignores it)")
    parser.add_argument("--int8-recipe", default="ladder", type=str.lower, choices=INT8_RECIPES,
                        help="int8 forms to try (default ladder): 'ladder' tries full int8, then the most sensitive "
                        "convolutions kept float under rising drift budgets, then dynamic range (int8 weights, float "
                        "compute), keeping the smallest form that passes its gate and naming it in the manifest; the "
                        "integer-only TFLite tries its calibrations (optional either way). 'full', 'keep-float' or "
                        "'dynamic' builds only that form (the integer-only TFLite its first) and fails when it fails")
    parser.add_argument("--no-golden", action="store_true", help="do not write golden vectors for the demos")
    parser.add_argument("--threads", type=int, help="PyTorch CPU threads for conversion, calibration and the reference "
                        "(default: torch's choice; each artifact's own check runs on 1 thread)")
    json_output.add_option(parser)


def run(args: argparse.Namespace) -> int:
    """Export, print a summary table; exit 1 when any artifact failed (the manifest still says why)."""
    from egeunet.accuracy import Gate
    from egeunet.commands import checks
    from egeunet.export import list_formats
    from egeunet.export.api import ExportFailed, export_all, summary_table
    from egeunet.export.spec import PRECISIONS, ExportSpec

    checks.positive("--n-calib", args.n_calib)
    checks.positive("--n-held", args.n_held)
    checks.size("--size", args.size)
    checks.output_dir("--out", args.out)
    formats = checks.names("--formats", args.formats, tuple(list_formats()), "format")
    precisions = checks.names("--precisions", args.precisions, PRECISIONS, "precision")
    checks.torch_threads(args.threads)
    gates = {"fp32": Gate(max_abs_dprob=args.fp32_tol),
             "fp16": Gate(min_agreement=args.fp16_agreement, max_abs_dprob=args.fp16_tol),
             "int8": Gate(min_agreement=args.int8_agreement, max_iou_drop_points=args.int8_iou_drop)}
    shown = sys.stderr if args.json else sys.stdout  # --json: stdout holds only the JSON document
    try:
        with json_output.stdout_to_stderr(args.json):
            spec = ExportSpec(size=args.size, nhwc=args.nhwc, bake_preprocess=args.bake_preprocess,
                              calib_method=args.calib_method, gates=gates, int8_drift_budget=args.int8_drift_budget,
                              int8_recipe=args.int8_recipe)
            manifest = export_all(args.model, args.out, spec=spec, formats=formats, precisions=precisions,
                                  calib_dir=args.calib, n_calib=args.n_calib, held_dir=args.held_out,
                                  n_held=args.n_held, int8_io=args.int8_io, golden=not args.no_golden)
    except ExportFailed as exc:
        print(summary_table(exc.manifest), file=shown)
        held_note(args.out, shown)
        if args.json:
            json_output.emit("export", args.model, 1, {"out": args.out, "manifest": exc.manifest}, str(exc))
        raise
    print(summary_table(manifest), file=shown)
    held_note(args.out, shown)
    count = len(manifest["artifacts"])
    print(f"wrote {count} artifact{'s' * (count != 1)} and manifest.json to {args.out}", file=shown)
    if args.json:
        json_output.emit("export", args.model, 0, {"out": args.out, "manifest": manifest})
    return 0


def held_note(out: str, stream) -> None:
    """Write the converters' held-back output (``egeunet.quiet``) to OUT/third_party.log and say so in one line."""
    from pathlib import Path

    from egeunet.quiet import held_summary, write_held

    log = write_held(Path(out) / "third_party.log") if Path(out).is_dir() else None
    line = held_summary(log)
    if line:
        print(line, file=stream)
