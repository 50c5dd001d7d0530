"""Where LiteRT spends its time on the fp32 deploy graph: each block's cost by ablation (1 thread, XNNPACK).

    .venv/bin/python scripts/profile_litert.py CKPT [--size 256] [--runs 60] [--blocks encoder.0,bridges.4,...]

The LiteRT Python package has no per-op profiler, so each block of the LiteRT float copy
(``deploy.for_litert(..., float_graph=True)``, what the fp32 TFLite file converts) is replaced in turn by a cheap
module of the same output shape (a 1x1 convolution for a stage, the low-level input for a bridge), converted with
litert_torch, and timed interleaved with the whole graph. A block's cost is the whole graph's median time minus the
ablated graph's, with the quartiles of the per-round differences (this shared machine drifts); the stand-in's own
cost is not counted, so each figure is a lower bound. Each conversion takes about 30 s.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import statistics
import tempfile
from pathlib import Path

import torch
from torch import nn

from bench_export import latency_rounds, litert_predict


class BridgeStandIn(nn.Module):
    """A bridge that returns its low-level input (the bridge's output shape)."""

    def forward(self, xh: torch.Tensor, xl: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return xl


def _stage_shapes(form, x: torch.Tensor) -> dict[str, tuple[int, int, int]]:
    """(input channels, output channels, stride) of every encoder and decoder stage, found by one forward pass."""
    found: dict[str, tuple[int, int, int]] = {}
    hooks = []
    for part in ("encoder", "decoder"):
        for i, stage in enumerate(getattr(form.net, part)):
            def record(module, args, out, name=f"{part}.{i}"):
                found[name] = (args[0].shape[1], out.shape[1], args[0].shape[2] // out.shape[2])
            hooks.append(stage.register_forward_hook(record))
    with torch.no_grad():
        form(x)
    for hook in hooks:
        hook.remove()
    return found


def ablated(form, block: str, shapes: dict):
    """A copy of ``form`` with ``block`` ('encoder.3', 'bridges.4', ...) replaced by its stand-in."""
    copied = copy.deepcopy(form)
    part, index = block.split(".")
    if part == "bridges":
        stand_in = BridgeStandIn()
    else:  # a 1x1 convolution with the stage's channels and stride: the cheapest module of its output shape
        cin, cout, stride = shapes[block]
        stand_in = nn.Conv2d(cin, cout, 1, stride=stride)
    getattr(copied.net, part)[int(index)] = stand_in
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=60, help="timed rounds (default 60)")
    parser.add_argument("--blocks", help="comma-separated blocks (default: every encoder and decoder stage and bridge)")
    args = parser.parse_args()

    import litert_torch

    from egeunet import load_model
    from egeunet.model.deploy import deploy_form, for_litert

    torch.set_num_threads(1)
    form = for_litert(deploy_form(load_model(args.checkpoint), args.size), float_graph=True)
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)) * 255
    shapes = _stage_shapes(form, x)
    known = [*shapes, *(f"bridges.{i}" for i in range(len(form.net.bridges or ())))]
    blocks = args.blocks.split(",") if args.blocks else known
    unknown = sorted(set(blocks) - set(known))
    if unknown:
        parser.error(f"unknown blocks {unknown}; choose from {', '.join(known)}")
    predictors = {}
    with tempfile.TemporaryDirectory() as work:
        for name, model in [("whole graph", form)] + [(b, ablated(form, b, shapes)) for b in blocks]:
            path = Path(work) / f"{name.replace(' ', '_')}.tflite"
            with torch.enable_grad(), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):  # grad: see bench_export.plain_tflite
                litert_torch.convert(model.eval(), (x,)).export(str(path))
            predictors[name] = litert_predict(path)
            print(f"converted {name}", flush=True)
        rounds = latency_rounds(predictors, x.numpy(), args.runs)
    whole = rounds.pop("whole graph")
    total = statistics.median(whole)
    print(f"\nwhole graph: {total:.2f} ms (median of {args.runs} rounds, 1 thread, {args.size}^2)\n")
    print("| block | cost ms (lower bound) | quartiles ms | share |\n|---|---|---|---|")
    costs = {}
    for name, times in rounds.items():
        costs[name] = statistics.quantiles([w - t for w, t in zip(whole, times)], n=4)  # q1, median, q3
    for name, (low, cost, high) in sorted(costs.items(), key=lambda item: -item[1][1]):
        print(f"| {name} | {cost:.2f} | {low:.2f}-{high:.2f} | {100 * cost / total:.0f}% |")


if __name__ == "__main__":
    main()
