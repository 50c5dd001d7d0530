"""The runner interface shared by PyTorch, ONNX Runtime, LiteRT and CoreML, and its registry."""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.preprocess import preprocess

RUNTIMES: dict[str, type["Runner"]] = {}
# runtime name -> module that registers it (imported on demand)
_MODULES = {
    "pytorch": "egeunet.benchmark.runners.torch_runner",
    "onnxruntime": "egeunet.benchmark.runners.onnx_runner",
    "litert": "egeunet.benchmark.runners.litert_runner",
    "litert-arm64": "egeunet.benchmark.runners.litert_arm64_runner",  # aarch64 kernels under qemu (scripts/setup_arm64.sh)
    "coreml": "egeunet.benchmark.runners.coreml_runner",
}


def register(cls: type["Runner"]) -> type["Runner"]:
    """Class decorator adding a runner to the registry under ``cls.runtime``."""
    RUNTIMES[cls.runtime] = cls
    return cls


def list_runtimes() -> list[str]:
    """Names of every runtime egeunet knows (whether or not it can run on this machine)."""
    return list(_MODULES)


def _runner_class(runtime: str) -> type["Runner"]:
    if runtime not in _MODULES:
        raise EGEUNetError(f"unknown runtime {runtime!r}; choose from {', '.join(_MODULES)}")
    if runtime not in RUNTIMES:
        try:
            importlib.import_module(_MODULES[runtime])
        except ModuleNotFoundError as exc:
            raise EGEUNetError(f"runtime {runtime!r} is not available: {exc}") from None
    return RUNTIMES[runtime]


_SUFFIXES = {"pytorch": (".pt", ".pth"), "onnxruntime": (".onnx",), "litert": (".tflite",),
             "coreml": (".mlpackage", ".mlmodel")}


def runtime_for(path: str | Path) -> str:
    """Runtime that executes a file, by extension (.pt/.pth PyTorch, .onnx, .tflite, .mlpackage)."""
    suffix = Path(path).suffix.lower()
    for runtime, suffixes in _SUFFIXES.items():
        if suffix in suffixes:
            return runtime
    raise EGEUNetError(f"{path}: unsupported model format {suffix or '(no extension)'!r}; "
                       "expected .pt/.pth, .onnx, .tflite or .mlpackage")


def open_runner(path: str | Path, runtime: str | None = None, threads: int | None = None, device: str = "cpu") -> "Runner":
    """Open a model file in its runtime (or the one named); one-line error if it cannot be loaded."""
    path = Path(path)
    if not path.exists():
        raise EGEUNetError(f"{path}: no such file")
    return _runner_class(runtime or runtime_for(path))(path, threads=threads, device=device)


class Runner(ABC):
    """A loaded model in one runtime. ``predict`` maps the canonical input to probabilities.

    Canonical input: float32 N x 3 x S x S from ``egeunet.preprocess``; output float32 N x 1 x S x S.
    A runner converts to its artifact's own layout and dtype (NHWC, int8 I/O) internally.
    """

    runtime: str = ""

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        self.path = Path(path)
        self.threads = threads
        self.device = device
        self.input_size = 256

    @abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities N x 1 x S x S for a preprocessed batch N x 3 x S x S."""

    def predict_image(self, image: np.ndarray) -> np.ndarray:
        """Probabilities S x S for one RGB image of any size (preprocessing included)."""
        return self.predict(preprocess(image, self.input_size))[0, 0]

    def describe(self) -> dict:
        """What was loaded: runtime, file, input size, device, threads."""
        return {"runtime": self.runtime, "path": str(self.path), "input_size": self.input_size,
                "device": self.device, "threads": self.threads}
