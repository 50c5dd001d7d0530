"""`egeunet info [MODEL]`: parameters, multiply-accumulates and a per-module table; for an exported artifact (a file
of any format egeunet exports: .onnx, .tflite, .mlpackage, ...) its contract, size, ops and numerics (int8 ops, float
fallbacks, integer-only)."""
from __future__ import annotations

import argparse
from pathlib import Path

from egeunet.commands import json_output

HELP = "print parameter counts (both conventions), MACs and a per-module table, or an exported artifact's facts"


def artifact_format(path: str | Path) -> str | None:
    """The export format of a file by its suffix (``egeunet.runtime.formats``); None for a checkpoint or unknown."""
    from egeunet.runtime.formats import format_of

    fmt = format_of(path)
    return fmt.name if fmt is not None and fmt.exporter else None


def _artifact_suffixes() -> str:
    from egeunet.runtime.formats import export_formats, file_format

    return ", ".join(file_format(name).suffix for name in export_formats())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="checkpoint (egeunet .pt or the authors' best/latest.pth) or an "
                        f"exported artifact ({_artifact_suffixes()}); default: a fresh paper model")
    parser.add_argument("--variant", default="egeunet", type=str.lower, help="Table 2 variant when no MODEL is given "
                        "(egeunet, baseline, baseline+ghpa, baseline+gab, no-multi-axis, no-param-dw, no-mask, no-dilation)")
    parser.add_argument("--size", type=int, default=256, help="input height = width for MAC counting (multiple of 32)")
    json_output.add_option(parser)


def run(args: argparse.Namespace) -> int:
    from egeunet import EGEUNet, load_model, variant_config
    from egeunet.commands import checks
    from egeunet.errors import EGEUNetError
    from egeunet.model.complexity import profile
    from egeunet.model.config import paper_params

    checks.size("--size", args.size)
    if args.model and artifact_format(args.model):
        return _artifact(Path(args.model), args.json)
    try:
        model = load_model(args.model) if args.model else EGEUNet(variant_config(args.variant))
    except ValueError as exc:
        raise EGEUNetError(str(exc)) from None
    rows = profile(model, args.size)
    total = {
        "params_all_tensors": sum(r.params_all for r in rows),
        "params_convolutions_only": sum(r.params_conv for r in rows),
        "gmacs_convolutions_only": sum(r.macs_conv for r in rows) / 1e9,
        "gmacs_with_norms_and_resizes": sum(r.macs_conv + r.macs_other for r in rows) / 1e9,
        "fp32_weight_bytes": 4 * sum(r.params_all for r in rows),
        "int8_weight_bytes": sum(r.params_all for r in rows),
    }
    if args.json:
        json_output.emit("info", args.model or args.variant, 0, {"config": model.config.to_dict(),
                         "input": [1, 3, args.size, args.size], **total, "modules": [r.__dict__ for r in rows]})
        return 0
    print(f"EGE-UNet ({args.model or args.variant}), input 1x3x{args.size}x{args.size}")
    paper = paper_params(model.config)
    print(f"  parameters, all tensors{f' (the paper: {paper})' if paper else ''}: {total['params_all_tensors']:,}")
    print(f"  parameters, convolutions only (what thop-style counters report): {total['params_convolutions_only']:,}")
    print(f"  multiply-accumulates, convolutions only (the paper's GFLOPs): {total['gmacs_convolutions_only']:.4f} G")
    print(f"  multiply-accumulates incl. norms and resizes (1 per output element): {total['gmacs_with_norms_and_resizes']:.4f} G")
    print(f"  weights: {total['fp32_weight_bytes'] / 1000:.1f} KB fp32, {total['int8_weight_bytes'] / 1000:.1f} KB int8")
    print()
    print(f"  {'module':<18}{'params (all)':>14}{'params (conv)':>15}{'MACs (conv)':>14}{'MACs (other)':>14}")
    for r in rows:
        print(f"  {r.name:<18}{r.params_all:>14,}{r.params_conv:>15,}{r.macs_conv:>14,}{r.macs_other:>14,}")
    return 0


def _artifact(path: Path, as_json: bool) -> int:
    """Describe an exported artifact from the file itself: contract, bytes, ops, quantization, integer-only."""
    from egeunet.errors import EGEUNetError
    from egeunet.export import get_format
    from egeunet.runtime.artifacts import file_digest
    from egeunet.runtime.byte_accounting import accounting, summary

    if not path.exists():
        raise EGEUNetError(f"{path}: no such file")
    try:
        info = get_format(artifact_format(path)).describe(path)
    except EGEUNetError:
        raise
    except Exception as exc:  # converters' readers raise untyped errors on a damaged file
        raise EGEUNetError(f"{path}: cannot read it as {path.suffix} ({type(exc).__name__})") from None
    size, sha = file_digest(path)
    record = {"file": str(path), "bytes": size, "sha256": sha, **{k: v for k, v in info.items() if k != "size_breakdown"}}
    if as_json:
        json_output.emit("info", path, 0, record)
        return 0
    contract = info.get("contract") or {}
    quant = info.get("quantization") or {}
    print(f"{path.name}: {size:,} bytes, {info['ops']} ops, variant {contract.get('variant', '?')} "
          f"({contract.get('precision', '?')}), input {contract.get('layout', '?')} {contract.get('input_dtype', '?')} "
          f"{contract.get('input_size', '?')}px")
    if "integer_only" in info:
        print(f"  integer-only: {'yes: every op between input and output computes on integers' if info['integer_only'] else 'no'}")
    if quant:
        print(f"  int8 ops: {', '.join(quant.get('int8_ops', [])) or '-'}")
        print(f"  float ops: {', '.join(quant.get('float_fallback_ops', [])) or 'none'}")
    print("  ops: " + ", ".join(f"{k} {v}" for k, v in list(info["op_counts"].items())[:12]))
    breakdown = info.get("size_breakdown") or accounting(path)  # formats with a byte accounting (TFLite, ONNX, ...)
    if breakdown:
        print(f"  bytes: {summary(breakdown)}")
    return 0
