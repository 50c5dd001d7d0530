"""ONNX Runtime runner: CPU provider (CUDA when asked for and present), contract read from metadata_props.

ORT's NCHWc layout pass is disabled (``DISABLED_OPTIMIZERS``): it wraps this network's many small convolutions in
layout conversions and runs slower with it on plain exports, the deploy form and int8 alike (1 thread, batch 1;
``scripts/bench_export.py`` measures each ONNX file with and without it). An egeunet export records this
recommendation in the artifact's contract (``runtime_options``); the runner follows the artifact's own list.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.runtime.contract import CONTRACT_KEY, ArtifactIO
from egeunet.runtime.runners.base import Runner, register

DISABLED_OPTIMIZERS = ["NchwcTransformer"]  # ORT graph optimizers the runner turns off (faster on every graph measured)


@register
class OnnxRunner(Runner):
    """``threads`` sets intra-op threads; ``device="cuda"`` uses the CUDA provider (error if absent)."""

    runtime = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__(path, threads, device)
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EGEUNetError(f"{path}: device {device!r} requested but onnxruntime has no CUDA provider here")
            providers.insert(0, "CUDAExecutionProvider")
        self.disabled_optimizers = DISABLED_OPTIMIZERS
        self.session = self._session(ort, path, options, providers)
        text = self.session.get_modelmeta().custom_metadata_map.get(CONTRACT_KEY)
        recommended = (json.loads(text).get("runtime_options") or {}).get("onnxruntime", {}) if text else {}
        if recommended.get("disabled_optimizers", self.disabled_optimizers) != self.disabled_optimizers:
            self.disabled_optimizers = list(recommended["disabled_optimizers"])  # the artifact's own recommendation
            self.session = self._session(ort, path, options, providers)
        self.io = ArtifactIO.from_contract(text)
        self.input_name = self.session.get_inputs()[0].name

    def _session(self, ort, path: Path, options, providers: list[str]):
        try:
            return ort.InferenceSession(str(path), options, providers=providers,
                                        disabled_optimizers=self.disabled_optimizers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise EGEUNetError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:160]})") from None

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def describe(self) -> dict:
        return {**super().describe(), "providers": self.session.get_providers(), "disabled_optimizers": self.disabled_optimizers}
