"""ARM64 LiteRT (qemu) vs x86 LiteRT on every .tflite of an export folder: max |dprob| and mask agreement.

    python scripts/arm64_agreement.py EXPORT_DIR [--n 16] [--cpu cortex-a76 --cpu max]

Images: ``--n`` synthetic photos 1..n of seed 1 (``egeunet sample-data`` and calibration use seed 0).
Prints one markdown row per artifact and emulated CPU (the README's "ARM64 kernels under emulation"), with
each runtime's mask agreement against the folder's fp32 artifact on x86 (how far int8 drifts on each) and
x86 XNNPACK's against x86 LiteRT's reference kernels (how far a mere change of kernels moves the mask).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from egeunet.runtime.runners import open_runner
from egeunet.runtime.runners.litert_arm64_runner import CPU_ENV
from egeunet.export.data import synthetic_sets


def _agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image share of pixels whose masks (p >= 0.5) agree."""
    return ((a >= 0.5) == (b >= 0.5)).reshape(len(a), -1).mean(axis=1)


def reference_kernels(path: Path, x: np.ndarray) -> np.ndarray:
    """Probabilities from x86 LiteRT's reference kernels (BUILTIN_REF): the spread LiteRT's own kernel choice makes."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    runner = open_runner(path, runtime="litert")
    runner.interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    runner.interpreter.allocate_tensors()  # same model, same tensor indices as the runner's own interpreter
    return runner.predict(x)


def compare(path: Path, cpu: str, x: np.ndarray, fp32: np.ndarray | None, ref: np.ndarray) -> dict:
    """x86 and emulated ARM probabilities of one artifact, against each other, ``fp32`` (x86) and ``ref``."""
    os.environ[CPU_ENV] = cpu
    arm = open_runner(path, runtime="litert-arm64")
    want, got = open_runner(path, runtime="litert").predict(x), arm.predict(x)
    per_image = _agreement(want, got)
    return {"max_abs_diff": float(np.abs(want - got).max()), "agreement": float(per_image.mean()),
            "worst_image": float(per_image.min()), "identical": bool(np.array_equal(want, got)),
            "x86_vs_fp32": None if fp32 is None else float(_agreement(want, fp32).mean()),
            "arm_vs_fp32": None if fp32 is None else float(_agreement(got, fp32).mean()),
            "x86_vs_ref": float(_agreement(want, ref).mean()),
            "emulated_ms": float(np.median(arm.last_ms)), "qemu": arm.describe()["emulator"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--n", type=int, default=16, help="synthetic photos (default 16)")
    parser.add_argument("--cpu", action="append", help="qemu -cpu model (repeatable; default cortex-a76)")
    args = parser.parse_args(argv)
    files = sorted(args.export_dir.glob("*.tflite"))
    if not files:
        print(f"{args.export_dir}: no .tflite files", file=sys.stderr)
        return 2
    size = open_runner(files[0], runtime="litert").input_size
    x = synthetic_sets(size, 1, args.n, seed=1)[1].canonical()  # held-out: photos 1..n of seed 1
    fp32_file = args.export_dir / "egeunet_fp32.tflite"
    fp32 = open_runner(fp32_file, runtime="litert").predict(x) if fp32_file.exists() else None
    pct = lambda v: "-" if v is None else f"{v:.2%}"  # noqa: E731
    print("| artifact | -cpu | images | ARM vs x86: max abs dprob | mask agreement | worst image | bit-identical "
          "| x86 vs fp32 | ARM vs fp32 | x86 vs x86 reference kernels | emulated ms/image |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in files:
        ref = reference_kernels(path, x)
        for cpu in args.cpu or ["cortex-a76"]:
            r = compare(path, cpu, x, fp32, ref)
            print(f"| {path.name} | {cpu} | {args.n} | {r['max_abs_diff']:.2e} | {r['agreement']:.2%} | "
                  f"{r['worst_image']:.2%} | {'yes' if r['identical'] else 'no'} | {pct(r['x86_vs_fp32'])} | "
                  f"{pct(r['arm_vs_fp32'])} | {r['x86_vs_ref']:.2%} | {r['emulated_ms']:.0f} |", flush=True)
    print(f"\n{r['qemu']}; x86: LiteRT in Python (XNNPACK); fp32: {fp32_file.name} on x86")
    return 0


if __name__ == "__main__":
    sys.exit(main())
