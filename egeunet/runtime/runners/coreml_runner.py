"""CoreML runner: ``coremltools`` MLModel.predict, which exists only on macOS; elsewhere a clear one-line error."""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.runtime.contract import CONTRACT_KEY, ArtifactIO
from egeunet.runtime.runners.base import Runner, register

NEEDS_MACOS = "CoreML prediction needs macOS"


@register
class CoreMLRunner(Runner):
    """``device``: "cpu" (CPU only) or "all" (CPU, GPU and Neural Engine); ``threads`` is not settable."""

    runtime = "coreml"

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__(path, threads, device)
        if platform.system() != "Darwin":
            raise EGEUNetError(f"{path}: not runnable here: {NEEDS_MACOS} (this is {platform.system()})")
        import coremltools as ct

        units = ct.ComputeUnit.CPU_ONLY if device == "cpu" else ct.ComputeUnit.ALL
        try:
            self.model = ct.models.MLModel(str(path), compute_units=units)
        except Exception as exc:  # coremltools raises untyped errors for bad packages
            raise EGEUNetError(f"{path}: CoreML cannot load it ({str(exc).splitlines()[0][:160]})") from None
        self.io = ArtifactIO.from_contract(self.model.user_defined_metadata.get(CONTRACT_KEY))
        spec = self.model.get_spec()
        self.input_name = spec.description.input[0].name
        self.output_name = spec.description.output[0].name

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.model.predict({self.input_name: one[None]})[self.output_name] for one in x])
