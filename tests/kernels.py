"""Another CPU family's kernels: what the suite's second run sets for PyTorch, and qemu for ONNX Runtime and LiteRT.

The second run of ``scripts/test.sh`` runs the tests marked ``numeric`` with the variables of
``scripts/other_kernels.env`` (PyTorch's portable ATen kernels, oneDNN up to SSE4.1), so trained fixtures, references
and exports come out with other rounding. ONNX Runtime and LiteRT's XNNPACK pick kernels from the CPU's own feature
bits, which no variable changes: they run in a child process under ``qemu-x86_64 -cpu MODEL`` (qemu-user comes with
the ARM64 kit, ``scripts/setup_arm64.sh``), where MODEL is another x86 family than the host's.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "scripts" / "other_kernels.env"

_CHILD = ("import sys, numpy as np; from egeunet.runtime.runners import open_runner; "
          "np.save(sys.argv[3], open_runner(sys.argv[1], threads=1).probabilities(np.load(sys.argv[2])))")


def torch_env() -> dict[str, str]:
    """The variables of scripts/other_kernels.env (KEY=VALUE lines; # comments)."""
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if line.strip() and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def host_flags() -> set[str]:
    """The host CPU's feature flags (/proc/cpuinfo), empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


def other_x86_cpu() -> str:
    """A qemu CPU model whose int8 and float kernels differ from the host's: Nehalem (SSE4) on an AVX2 host without
    AVX-512, else Haswell (AVX2 without VNNI: most laptops' and AMD EPYC servers' kernels)."""
    flags = host_flags()
    return "Nehalem" if "avx2" in flags and "avx512f" not in flags else "Haswell"


def emulated_probabilities(path: str | Path, canonical: np.ndarray, cpu: str | None = None) -> np.ndarray:
    """Probabilities N x S x S of an ONNX or TFLite file run by its runner (one thread) under ``qemu-x86_64 -cpu CPU``
    on canonical inputs N x 3 x S x S; the child imports numpy and the runtime only (seconds per image)."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        pytest.fail("qemu-x86_64 is missing: scripts/setup_arm64.sh installs it (qemu-user)")
    with tempfile.TemporaryDirectory() as work:
        inputs, out = Path(work) / "x.npy", Path(work) / "y.npy"
        np.save(inputs, canonical)
        done = subprocess.run([qemu, "-cpu", cpu or other_x86_cpu(), sys.executable, "-c", _CHILD, str(path),
                               str(inputs), str(out)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{path} under qemu-x86_64 failed: {done.stderr[-2000:]}"
        return np.load(out)


def unfused_onnxruntime(path: Path, inputs: np.ndarray) -> np.ndarray:
    """ONNX Runtime with graph optimizations off: the QDQ graph's own arithmetic (dequantize, float op, quantize),
    the same on any CPU. Its fused int8 kernels are not: on x86 without VNNI their 16-bit sums saturate."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]
