"""Another x86 CPU family's kernels for ONNX Runtime and LiteRT: run a runner under ``qemu-x86_64 -cpu MODEL``.

ONNX Runtime and LiteRT's XNNPACK pick their kernels from the CPU's own feature bits, which no variable changes, and
those kernels differ in rounding, and sometimes in faults (XNNPACK's int8 MEAN on AVX2, ONNX Runtime's saturating
int8 dot products without VNNI). qemu-user (installed with the ARM64 kit, ``scripts/setup_arm64.sh``) runs the same
Python with another CPU's feature bits; the child imports numpy and the runtime only (seconds per 256 px image).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError

_CHILD = ("import sys, numpy as np; from egeunet.runtime.runners import open_runner; "
          "np.save(sys.argv[3], open_runner(sys.argv[1], threads=1).probabilities(np.load(sys.argv[2])))")


def host_flags() -> set[str]:
    """The host CPU's feature flags (/proc/cpuinfo), empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


def other_x86_cpu() -> str:
    """A qemu CPU model whose kernels differ from the host's: Nehalem (SSE4) on an AVX2 host without AVX-512, else
    Haswell (AVX2 without VNNI: most laptops' and AMD EPYC servers' kernels)."""
    flags = host_flags()
    return "Nehalem" if "avx2" in flags and "avx512f" not in flags else "Haswell"


def emulated_probabilities(path: str | Path, canonical: np.ndarray, cpu: str | None = None,
                           timeout: float = 1800) -> np.ndarray:
    """Probabilities N x S x S of an ONNX or TFLite file run by its runner (one thread) under ``qemu-x86_64 -cpu CPU``
    (default ``other_x86_cpu()``) on canonical inputs N x 3 x S x S."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise EGEUNetError("qemu-x86_64 not found: scripts/setup_arm64.sh installs it (Debian's qemu-user)")
    cpu = cpu or other_x86_cpu()
    with tempfile.TemporaryDirectory() as work:
        inputs, out = Path(work) / "x.npy", Path(work) / "y.npy"
        np.save(inputs, canonical)
        done = subprocess.run([qemu, "-cpu", cpu, sys.executable, "-c", _CHILD, str(path), str(inputs), str(out)],
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip() and "TCG doesn't support" not in line]
            raise EGEUNetError(f"{path}: failed under qemu-x86_64 -cpu {cpu} ({(lines or ['no message'])[-1][:200]})")
        return np.load(out)
