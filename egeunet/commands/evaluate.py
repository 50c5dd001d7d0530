"""`egeunet evaluate MODEL --data DIR`: the paper's metrics for any model `open_runner` opens (.pt, .onnx, ...).

Which images: the part named by --split of --split-file if given; else of the split recorded in a
training checkpoint (when --data is the folder it was trained on and the file still exists), or for an
exported artifact in its source checkpoint (manifest.json beside the file names it); else every image
of the dataset (--split all).
"""
from __future__ import annotations

import argparse
from typing import Any

from egeunet.commands import json_output

HELP = "score a model on a dataset with the paper's protocol (pooled mIoU, DSC, accuracy, sensitivity, specificity)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Model, data, which split, output format and runtime options."""
    from egeunet.commands import checks

    parser.add_argument("model", metavar="MODEL", help="checkpoint (.pt/.pth) or exported model (.onnx, .tflite, ...)")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder")
    parser.add_argument("--split", type=str.lower, choices=("train", "val", "test", "all"),
                        help="part to score (default: test when a split is known, else all)")
    parser.add_argument("--split-file", metavar="FILE", help="split.json to take --split from (default: the one "
                        "recorded in the checkpoint, or for an exported artifact in its source checkpoint named by the "
                        "manifest.json beside it, when --data is its training data)")
    parser.add_argument("--size", type=int, help="input size (default: the model's, 256 for the paper)")
    parser.add_argument("--batch", type=int, default=16, help="images per forward pass (default 16)")
    checks.add_alias(parser, "--batch-size", "--batch", deprecated=False, type=int)
    parser.add_argument("--runtimes", metavar="RUNTIME", help="runtime to use instead of the one the file extension "
                        "implies (one name, any case: the option is a comma list on every command)")
    checks.add_alias(parser, "--runtime", "--runtimes", deprecated=False)
    parser.add_argument("--device", default="cpu", help="device for runtimes that have one (cpu, cuda, mps)")
    parser.add_argument("--threads", type=int, help="CPU threads of the runtime")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable or inconsistent files (counted in one warning)")
    parser.add_argument("--cache-dir", metavar="DIR", help="decoded-image cache (default: $EGEUNET_CACHE or ~/.cache/egeunet)")
    json_output.add_option(parser)  # metrics as fractions


def run(args: argparse.Namespace) -> int:
    """Open the model and the data, score the chosen part, print JSON or a table."""
    import numpy as np

    from egeunet.runtime.runners import open_runner
    from egeunet.commands import checks
    from egeunet.data.cache import open_cache
    from egeunet.data.layouts import find_samples
    from egeunet.data.splits import load_split
    from egeunet.errors import EGEUNetError
    from egeunet.training.dataset import open_split_data
    from egeunet.training.evaluate import evaluate_rows, runner_predictor

    checks.positive("--batch", args.batch)
    checks.positive("--threads", args.threads)
    checks.size("--size", args.size)
    checks.cache_dir(args.cache_dir)
    runner = open_runner(args.model, runtime=checks.one_runtime(args.runtimes), threads=args.threads,
                         device=args.device)
    size = args.size or runner.input_size
    split_file, recorded_by = (args.split_file, "") if args.split_file else recorded_split_of(args.model, args.data)
    cache = dict(cache_dir=args.cache_dir, skip_bad=args.skip_bad)
    if split_file:
        part = args.split or "test"
        source = f"{part} part of {split_file}" + (f" ({recorded_by})" if recorded_by else "")
        data = open_split_data(args.data, load_split(split_file), size, split_file, **cache)
        cached, rows = data.cached, data.rows(part)
    elif args.split in (None, "all"):
        part, source = "all", "every image (no split file given or recorded)"
        cached = open_cache(find_samples(args.data), size=size, **cache)
        rows = np.arange(len(cached))
    else:
        raise EGEUNetError(f"--split {args.split} needs a split: pass --split-file (a run's split.json), or use --split all")
    if not len(rows):
        raise EGEUNetError(f"no images to evaluate in the {source}")
    metrics = evaluate_rows(runner_predictor(runner), cached, rows, args.batch, desc=f"evaluating {part}")
    report = {"model": str(args.model), "runtime": runner.runtime, "data": str(args.data), "split": part,
              "split_source": source, "size": size, **metrics}
    if args.json:
        json_output.emit("evaluate", args.model, 0, report)
    else:
        print(format_report(report))
    return 0


def recorded_split_of(model: str, data: str) -> tuple[str | None, str]:
    """The split file recorded for ``model`` on ``data`` and who recorded it: a training checkpoint itself, or for an
    exported artifact its source checkpoint, named by the manifest.json beside the file when that lists the file."""
    from pathlib import Path

    from egeunet.errors import EGEUNetError
    from egeunet.runtime.artifacts import MANIFEST, manifest_source, read_manifest
    from egeunet.runtime.formats import is_checkpoint
    from egeunet.training.dataset import recorded_split

    path = Path(model)
    if is_checkpoint(path):
        split = recorded_split(model, data)
        return split, "recorded in the checkpoint" if split else ""
    try:
        manifest = read_manifest(path.parent) if (path.parent / MANIFEST).is_file() else None
    except EGEUNetError:
        manifest = None
    if manifest is None or path.name not in {a.get("file") for a in manifest["artifacts"]}:
        return None, ""
    source, _ = manifest_source(manifest, path.parent)
    split = recorded_split(str(source), data) if source is not None and source.is_file() else None
    return split, f"recorded by its export: {MANIFEST} -> {source}" if split else ""


def format_report(report: dict[str, Any]) -> str:
    """The readable table: pooled metrics in percent, per-image means and the worst images."""
    lines = [f"{report['model']} ({report['runtime']}) on {report['images']} images of {report['data']} at "
             f"{report['size']}px: {report['split_source']}", "",
             "  pooled over all pixels (the paper's protocol, threshold 0.5):"]
    names = {"miou": "mIoU (foreground IoU)", "dsc": "DSC", "accuracy": "accuracy", "sensitivity": "sensitivity",
             "specificity": "specificity"}
    lines += [f"    {label:<24}{100 * report[key]:8.2f} %" for key, label in names.items()]
    lines += ["", "  per image (empty prediction on an empty mask counts as 1.0):",
              f"    {'mean IoU':<24}{100 * report['image_iou_mean']:8.2f} %",
              f"    {'mean Dice':<24}{100 * report['image_dice_mean']:8.2f} %",
              "", f"  worst {len(report['worst'])} by IoU:"]
    lines += [f"    {w['id']:<24}IoU {100 * w['iou']:6.2f} %  Dice {100 * w['dice']:6.2f} %" for w in report["worst"]]
    return "\n".join(lines)
