"""Single-op reproduction: do LiteRT's aarch64 int8 kernels with SME agree with LiteRT's reference kernels?

Builds two one-op full-int8 TFLite models (FULLY_CONNECTED 256 -> 256 on 64 rows, CONV_2D 3x3 32 -> 64 on
32 x 32; int8 weights, activations and I/O, calibrated with ai-edge-quantizer), runs each on random int8
inputs in LiteRT's aarch64 build under qemu-aarch64 (the kit of scripts/setup_arm64.sh) with several
emulated CPUs, and compares the int8 outputs with x86 LiteRT's reference kernels (BUILTIN_REF): the
largest difference in int8 steps and the share of outputs that differ. `-cpu max` turns SVE2 and SME on,
so XNNPACK takes its SME int8 outer-product (SMOPA) kernels; `cortex-a76` is ARMv8.2 with dot product.

    python scripts/arm64_sme_check.py                                   # the kit's qemu
    python scripts/arm64_sme_check.py --qemu /path/to/qemu-aarch64-static   # also another qemu build

Exit status 1 when a run under the kit's qemu is off by more than one int8 step (rounding) anywhere.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

CPUS = ("cortex-a76", "max,sme=off", "max")
ROUNDING_STEPS = 1  # optimised and reference int8 kernels may round a requantised value differently by one step


def _one_op_model(module: torch.nn.Module, shape: tuple[int, ...], out: Path) -> Path:
    """Convert ``module`` with litert-torch and quantise it fully to int8 (int8 I/O), calibrated on random data."""
    import litert_torch
    from ai_edge_quantizer import quantizer, recipe

    example = torch.randn(shape)
    fp32 = out.with_suffix(".fp32.tflite")
    litert_torch.convert(module.eval(), (example,)).export(str(fp32))
    q = quantizer.Quantizer(str(fp32))
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    rng = np.random.default_rng(0)
    calibration = q.calibrate({"serving_default": [{"args_0": rng.standard_normal(shape).astype(np.float32)}
                                                   for _ in range(8)]})
    q.quantize(calibration).export_model(str(out), overwrite=True)
    return out


def _reference(model: Path, inputs: np.ndarray) -> np.ndarray:
    """Outputs of x86 LiteRT's reference kernels, one input at a time."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    src, dst = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for x in inputs:
        interp.set_tensor(src["index"], x)
        interp.invoke()
        outs.append(interp.get_tensor(dst["index"]).copy())
    return np.stack(outs)


def _emulated(kit: dict, qemu: str, cpu: str, model: Path, inputs: np.ndarray, tmp: Path) -> np.ndarray:
    """Outputs of LiteRT aarch64 under ``qemu -cpu cpu``: all inputs in one process (native_check/litert_run.c)."""
    src, dst = tmp / "in.bin", tmp / "out.bin"
    inputs.tofile(src)
    proc = subprocess.run([qemu, "-L", kit["prefix"], "-cpu", cpu, kit["litert_run"], str(model), str(src), str(dst)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{qemu} -cpu {cpu} {model.name}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return np.fromfile(dst, dtype=np.int8).reshape(len(inputs), -1)


def _qemu_version(qemu: str) -> str:
    return subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split()[2]


def main(argv: list[str] | None = None) -> int:
    from egeunet.runtime.runners.litert_arm64_runner import load_kit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qemu", action="append", default=[], help="another qemu-aarch64 binary to compare (repeatable)")
    parser.add_argument("--n", type=int, default=4, help="random inputs per model")
    args = parser.parse_args(argv)
    kit = load_kit()
    torch.manual_seed(0)  # the layers' weights
    ops = {"FULLY_CONNECTED": (torch.nn.Linear(256, 256), (64, 256)),
           "CONV_2D": (torch.nn.Conv2d(32, 64, 3, padding=1), (1, 32, 32, 32))}
    failed, rows = False, []
    with tempfile.TemporaryDirectory(prefix="egeunet-sme-") as tmp:
        tmp = Path(tmp)
        for name, (module, shape) in ops.items():
            model = _one_op_model(module, shape, tmp / f"{name}.tflite")
            from ai_edge_litert.interpreter import Interpreter

            detail = Interpreter(model_path=str(model)).get_input_details()[0]
            rng = np.random.default_rng(1)
            inputs = rng.integers(-128, 128, (args.n, *detail["shape"]), dtype=np.int16).astype(detail["dtype"])
            want = _reference(model, inputs).reshape(args.n, -1).astype(np.int32)
            for qemu in [kit["qemu"], *args.qemu]:
                for cpu in CPUS:
                    diff = np.abs(_emulated(kit, qemu, cpu, model, inputs, tmp).astype(np.int32) - want)
                    rows.append(f"| {_qemu_version(qemu)} | {cpu} | {name} | {diff.max()} | {(diff > 0).mean():.2%} |")
                    failed |= qemu == kit["qemu"] and diff.max() > ROUNDING_STEPS
    print("\n| qemu | -cpu | op | max diff vs reference kernels (int8 steps) | outputs differing |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
