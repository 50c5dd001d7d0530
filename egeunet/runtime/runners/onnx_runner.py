"""ONNX Runtime runner: CPU provider (CUDA when asked for and present), contract read from metadata_props.

ORT's NCHWc layout pass is disabled by default (``DISABLED_OPTIMIZERS``): it wraps this network's many small
convolutions in layout conversions and was never faster with it here (1 thread, batch 1: plain exports 1.07-1.16x
slower, the fp32 deploy form 0.97-1.08x, int8 about equal; ``scripts/bench_export.py`` and ``egeunet benchmark``
measure each ONNX file with and without it). An egeunet export records this
recommendation in the artifact's contract (``runtime_options``); the runner follows the artifact's own list, or runs
with ORT's own defaults (nothing disabled) when opened with ``ort_options="default"``, so the benchmark can time both.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.runtime.contract import CONTRACT_KEY, ArtifactIO, TensorSpec
from egeunet.runtime.runners.base import Runner, register

DISABLED_OPTIMIZERS = ["NchwcTransformer"]  # ORT graph optimizers the runner turns off (never slower where measured)
ORT_OPTIONS = ("recommended", "default")  # the artifact's recommended session options, or ORT's defaults
OPTIMIZATIONS = ("all", "off")  # "off": no graph optimization, so a QDQ graph runs as its own float arithmetic
_ONNX_DTYPES = {"float": "float32", "double": "float64"}  # ONNX element type names numpy spells otherwise


def _spec(arg) -> TensorSpec:
    """An ORT ``NodeArg`` as a ``TensorSpec``: named or unknown dimensions become None, "tensor(float)" float32."""
    element = arg.type.removeprefix("tensor(").removesuffix(")")
    return TensorSpec(arg.name, tuple(d if isinstance(d, int) else None for d in arg.shape),
                      _ONNX_DTYPES.get(element, element))


@register
class OnnxRunner(Runner):
    """``threads`` sets intra-op threads; ``device="cuda"`` uses the CUDA provider (error if absent);
    ``ort_options`` "recommended" (the artifact's list, else ``DISABLED_OPTIMIZERS``) or "default" (ORT's own);
    ``optimizations`` "off" runs the graph unoptimized: a QDQ graph as dequantize, float op, quantize (the same on any
    CPU) instead of the fused int8 kernels ORT picks for this CPU (``egeunet.runtime.kernel_sets``)."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu",
                 ort_options: str = "recommended", optimizations: str = "all") -> None:
        super().__init__(path, threads, device)
        import onnxruntime as ort

        if ort_options not in ORT_OPTIONS:
            raise EGEUNetError(f"ort_options must be one of {', '.join(ORT_OPTIONS)}, got {ort_options!r}")
        if optimizations not in OPTIMIZATIONS:
            raise EGEUNetError(f"optimizations must be one of {', '.join(OPTIMIZATIONS)}, got {optimizations!r}")
        options = ort.SessionOptions()
        if optimizations == "off":
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EGEUNetError(f"{path}: device {device!r} requested but onnxruntime has no CUDA provider here")
            providers.insert(0, "CUDAExecutionProvider")
        self.ort_options = ort_options
        self.disabled_optimizers = DISABLED_OPTIMIZERS if ort_options == "recommended" else []
        self.session = self._session(ort, path, options, providers)
        self.io = ArtifactIO.from_contract(self.session.get_modelmeta().custom_metadata_map.get(CONTRACT_KEY),
                                           self.input_spec())
        recorded = self.io.runtime_options.get("onnxruntime", {})
        self.recommended = list(recorded.get("disabled_optimizers", DISABLED_OPTIMIZERS))
        self.recommended_from = "artifact contract" if "disabled_optimizers" in recorded else "egeunet default"
        if ort_options == "recommended" and self.recommended != self.disabled_optimizers:
            self.disabled_optimizers = self.recommended  # the artifact's own recommendation
            self.session = self._session(ort, path, options, providers)
        self.input_name = self.session.get_inputs()[0].name

    def _session(self, ort, path: Path, options, providers: list[str]):
        try:
            return ort.InferenceSession(str(path), options, providers=providers,
                                        disabled_optimizers=self.disabled_optimizers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise EGEUNetError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:160]})") from None

    def input_spec(self) -> TensorSpec:
        return _spec(self.session.get_inputs()[0])

    def output_spec(self) -> TensorSpec:
        return _spec(self.session.get_outputs()[0])

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def describe(self) -> dict:
        return {**super().describe(), "providers": self.session.get_providers(), "ort_options": self.ort_options,
                "disabled_optimizers": self.disabled_optimizers, "recommended_disabled_optimizers": self.recommended,
                "recommended_from": self.recommended_from}
