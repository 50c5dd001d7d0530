"""Another CPU family's kernels: what the suite's second run sets for PyTorch, and qemu for ONNX Runtime and LiteRT.

The second run of ``scripts/test.sh`` runs the tests marked ``numeric`` with the variables of
``scripts/other_kernels.env`` (PyTorch's portable ATen kernels, oneDNN up to SSE4.1), so trained fixtures, references
and exports come out with other rounding. ONNX Runtime and LiteRT's XNNPACK pick kernels from the CPU's own feature
bits, which no variable changes: they run in a child process under ``qemu-x86_64 -cpu MODEL``
(``egeunet.runtime.x86_emulation``), where MODEL is another x86 family than the host's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "scripts" / "other_kernels.env"


def torch_env() -> dict[str, str]:
    """The variables of scripts/other_kernels.env (KEY=VALUE lines; # comments)."""
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if line.strip() and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def unfused_onnxruntime(path: Path, inputs: np.ndarray) -> np.ndarray:
    """ONNX Runtime with graph optimizations off: the QDQ graph's own arithmetic (dequantize, float op, quantize),
    the same on any CPU (the reference kernel set, ``egeunet.runtime.kernel_sets``). Its fused int8 kernels are not:
    on x86 without VNNI their 16-bit sums saturate."""
    from egeunet.runtime.kernel_sets import KERNEL_SETS

    return KERNEL_SETS["onnxruntime"][0].run_graph(Path(path).read_bytes(), [inputs])[0]
