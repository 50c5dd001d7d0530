"""Kernel sets: one artifact run on several kernels of its runtime, to tell a kernel fault from quantization error.

A runtime computes an int8 graph with kernels it picks for the CPU (ONNX Runtime's fused int8 path, LiteRT's
XNNPACK), and those kernels can be wrong on one CPU and right on another (``shared/notes/kernel-faults.md``: XNNPACK's
int8 MEAN over long reductions and ORT's u8s8 saturation on x86 without VNNI). Each runtime therefore lists a
*reference* set, plain arithmetic that is the same on any CPU (ORT with graph optimizations off runs a QDQ graph as
dequantize, float op, quantize; LiteRT's reference kernels), and the *deployment* sets people run: this CPU's fused
kernels, and for TFLite the aarch64 XNNPACK phones run (``litert-arm64``, under emulation, when the kit is installed).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class KernelSet:
    """One runtime with options that pick its kernels; ``role`` is "reference" (decides whether the quantization is
    right) or "deployment" (what a device runs); ``perturb`` (tests only) rewrites a graph before it runs."""

    name: str
    runtime: str
    options: dict = field(default_factory=dict)
    role: str = "deployment"
    what: str = ""
    perturb: Callable[[bytes], bytes] | None = None

    def unavailable(self) -> str:
        """Why this set cannot run here ("" when it can): the ARM64 emulation kit may be missing."""
        if self.runtime != "litert-arm64":
            return ""
        from egeunet.errors import EGEUNetError
        from egeunet.runtime.runners.litert_arm64_runner import load_kit

        try:
            load_kit()
        except EGEUNetError as exc:
            return str(exc)
        return ""

    def probabilities(self, path: Path, images: list[np.ndarray] | np.ndarray, work: Path) -> np.ndarray:
        """Probabilities N x S x S for RGB images at the model size, fed as an app feeds the artifact."""
        from egeunet.runtime.runners import open_runner

        if self.perturb is not None:
            changed = work / f"{self.name.replace('/', '-')}{path.suffix}"
            changed.write_bytes(self.perturb(path.read_bytes()))
            path = changed
        runner = open_runner(path, self.runtime, threads=1, options=self.options)
        return runner.io.output(runner.run_raw(runner.io.images_input(np.asarray(images))))[:, 0]

    def run_graph(self, buf: bytes, feeds: list[np.ndarray]) -> list[np.ndarray]:
        """Raw outputs of a graph without a contract (one op of an artifact) for inputs in the graph's order."""
        buf = self.perturb(buf) if self.perturb is not None else buf
        if self.runtime == "onnxruntime":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.log_severity_level = 3
            if self.options.get("optimizations") == "off":
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            session = ort.InferenceSession(buf, options, providers=["CPUExecutionProvider"])
            return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), feeds)})
        if self.runtime == "litert":
            from egeunet.runtime.runners.litert_runner import interpreter

            model = interpreter(buf, self.options.get("kernels", "xnnpack"), threads=1)
            model.allocate_tensors()
            for detail, x in zip(model.get_input_details(), feeds):
                model.set_tensor(detail["index"], x)
            model.invoke()
            return [model.get_tensor(d["index"]) for d in model.get_output_details()]
        raise ValueError(f"kernel set {self.name}: one-op graphs run in onnxruntime or litert only, not {self.runtime}")


KERNEL_SETS: dict[str, tuple[KernelSet, ...]] = {
    "onnxruntime": (
        KernelSet("onnxruntime/unfused", "onnxruntime", {"optimizations": "off"}, "reference",
                  "ONNX Runtime, graph optimizations off: the QDQ arithmetic, the same on any CPU"),
        KernelSet("onnxruntime/fused", "onnxruntime", {}, "deployment",
                  "ONNX Runtime's fused int8 kernels for this CPU (what x86/ARM servers and desktops run)"),
    ),
    "litert": (
        KernelSet("litert/reference", "litert", {"kernels": "reference"}, "reference",
                  "LiteRT's reference kernels: plain integer arithmetic, the same on any CPU"),
        KernelSet("litert/xnnpack-x86", "litert", {}, "deployment",
                  "LiteRT's XNNPACK on this x86 CPU (x86 deployment)"),
        KernelSet("litert/xnnpack-arm64", "litert-arm64", {}, "deployment",
                  "LiteRT's aarch64 XNNPACK, the kernels phones run (emulated by the ARM64 kit)"),
    ),
}


def kernel_sets(runtime: str) -> tuple[KernelSet, ...]:
    """The kernel sets of a runtime, reference first (empty for a runtime with one set, e.g. CoreML here)."""
    return KERNEL_SETS.get(runtime, ())
