"""Does an exported file hold on another x86 CPU's kernels? Its agreement with the fp32 model here and under qemu.

    python scripts/x86_agreement.py MODEL ARTIFACT [ARTIFACT ...] --data DIR [--n 60] [--cpu Haswell]

ONNX Runtime and LiteRT's XNNPACK choose kernels from the CPU's feature bits (``egeunet.runtime.x86_emulation``), so
an int8 file can pass its gate on the machine that exported it and fail on another. Held-out images: the test part of
MODEL's recorded split when DIR is its training data, else the last --n images of DIR. Prints, per artifact and
kernel set (this host, then ``qemu-x86_64 -cpu CPU``), mask agreement with the fp32 PyTorch model (95% bootstrap
interval over images) and the pooled-IoU drop against the masks.
"""
from __future__ import annotations

import argparse
import platform

from egeunet import load_model
from egeunet.accuracy import compare
from egeunet.export.api import reference_probs
from egeunet.export.data import folder_sets, split_sets
from egeunet.runtime.runners import open_runner
from egeunet.runtime.x86_emulation import emulated_probabilities, host_flags, other_x86_cpu
from egeunet.training.dataset import recorded_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the fp32 checkpoint the artifacts were exported from")
    parser.add_argument("artifacts", nargs="+", help=".onnx or .tflite files")
    parser.add_argument("--data", required=True, help="dataset folder (the model's training data: its test split)")
    parser.add_argument("--n", type=int, default=60, help="held-out images (default 60)")
    parser.add_argument("--cpu", help="qemu CPU model (default: Haswell, or Nehalem on an AVX2 host)")
    args = parser.parse_args()
    model, meta = load_model(args.model, with_meta=True)
    size = int(meta.get("input_size", 256))
    split = recorded_split(args.model, args.data)
    _, held = split_sets(args.data, split, size, 1, args.n) if split else folder_sets(args.data, size, 1, args.n)
    reference, x = reference_probs(model, held.images), held.canonical()
    cpu = args.cpu or other_x86_cpu()
    isa = "AVX-512" if "avx512f" in host_flags() else "AVX2" if "avx2" in host_flags() else platform.machine()
    print(f"{len(held)} held-out images; kernels: this host ({isa}) and qemu -cpu {cpu}")
    print("| artifact | kernels | agreement % [95% interval] | IoU drop (points) |\n|---|---|---|---|")
    for path in args.artifacts:
        for kernels, probs in (("host", open_runner(path, threads=1).probabilities(x)),
                               (f"qemu {cpu}", emulated_probabilities(path, x, cpu))):
            c = compare(probs, reference, held.masks)
            low, high = c.interval("agreement")
            drop = "-" if c.iou_drop_points is None else f"{c.iou_drop_points:+.2f}"
            print(f"| {path} | {kernels} | {c.agreement:.2%} [{low:.2%}, {high:.2%}] | {drop} |", flush=True)


if __name__ == "__main__":
    main()
