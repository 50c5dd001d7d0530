"""The runner interface shared by every runtime, and its registry of runtimes (which files each runs: ``formats``)."""
from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.runtime import formats
from egeunet.runtime.contract import ArtifactIO, TensorSpec

RUNTIMES: dict[str, type["Runner"]] = {}  # filled as runner modules are imported (``formats.runner_modules``)


def register(cls: type["Runner"]) -> type["Runner"]:
    """Class decorator adding a runner to the registry under ``cls.runtime``."""
    RUNTIMES[cls.runtime] = cls
    return cls


def list_runtimes() -> list[str]:
    """Names of every runtime egeunet knows (whether or not it can run on this machine)."""
    return list(formats.runner_modules())


def runtimes_for(path: str | Path) -> list[str]:
    """Runtimes that can run a file, by extension; its default runtime first (empty for an unknown type)."""
    fmt = formats.format_of(path)
    return list(fmt.runtimes) if fmt is not None else []


def runtime_for(path: str | Path) -> str:
    """The default runtime of a file (.pt/.pth PyTorch, .onnx ONNX Runtime, .tflite LiteRT, .mlpackage CoreML)."""
    found = runtimes_for(path)
    if not found:
        suffix = Path(path).suffix.lower()
        known = ", ".join(sorted(formats.all_suffixes()))
        raise EGEUNetError(f"{path}: unsupported model format {suffix or '(no extension)'!r}; expected one of {known}")
    return found[0]


def _runner_class(runtime: str) -> type["Runner"]:
    modules = formats.runner_modules()
    if runtime not in modules:
        raise EGEUNetError(f"unknown runtime {runtime!r}; choose from {', '.join(modules)}")
    if runtime not in RUNTIMES:
        try:
            importlib.import_module(modules[runtime])
        except ModuleNotFoundError as exc:
            raise EGEUNetError(f"runtime {runtime!r} is not available: {exc}") from None
    return RUNTIMES[runtime]


def open_runner(path: str | Path, runtime: str | None = None, threads: int | None = None,
                device: str = "cpu", options: dict | None = None) -> "Runner":
    """Open a model file in its runtime (or the one named); one-line error if it cannot be loaded.

    ``options``: keyword arguments only that runtime's runner takes (onnxruntime: ``ort_options``)."""
    path = Path(path)
    if not path.exists():
        raise EGEUNetError(f"{path}: no such file")
    runtime = runtime or runtime_for(path)
    if runtime in formats.runner_modules() and runtime not in runtimes_for(path):
        raise EGEUNetError(f"{path}: runtime {runtime!r} does not run {path.suffix or 'extensionless'} files")
    cls = _runner_class(runtime)
    taken = set(inspect.signature(cls.__init__).parameters) - {"self", "path", "threads", "device"}
    unknown = sorted(set(options or {}) - taken)
    if unknown:
        raise EGEUNetError(f"runtime {runtime!r} takes no option {unknown[0]!r} (it takes: {', '.join(sorted(taken)) or 'none'})")
    return cls(path, threads=threads, device=device, **(options or {}))


class Runner(ABC):
    """A loaded model in one runtime: ``run_raw`` on the artifact's own input, ``predict`` on the canonical one.

    Canonical input: float32 N x 3 x S x S from ``egeunet.preprocess``; output float32 N x 1 x S x S. ``io`` (the
    artifact's contract) converts to and from the artifact's own layout and dtypes (NHWC, uint8 pixels, int8 I/O).
    """

    runtime: str = ""
    io: ArtifactIO = ArtifactIO()

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        self.path = Path(path)
        self.threads = threads
        self.device = device

    @property
    def input_size(self) -> int:
        """Height = width of the model's input."""
        return self.io.size

    @abstractmethod
    def run_raw(self, x: np.ndarray) -> np.ndarray:
        """The artifact's raw output tensor for ``x`` given exactly as the artifact takes it (layout, dtype)."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities N x 1 x S x S for canonical N x 3 x S x S input (rounded to uint8 for a baked artifact)."""
        return self.io.output(self.run_raw(self.io.canonical_input(batch)))

    def input_spec(self) -> TensorSpec:
        """The input tensor as the file declares it (here: what the contract implies, any batch)."""
        shape = (None, 3, self.io.size, self.io.size)
        return TensorSpec("input", shape[:1] + shape[2:] + shape[1:2] if self.io.layout == "NHWC" else shape,
                          "float32")

    def output_spec(self) -> TensorSpec:
        """The output tensor as the file declares it (here: the contract's N x 1 x S x S probabilities)."""
        return TensorSpec("output", (None, 1, self.io.size, self.io.size), "float32")

    def probabilities(self, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
        """Foreground probabilities N x S x S for canonical inputs N x 3 x S x S, ``batch`` images per call (the
        file's own batch when it fixes one; the last call padded to it)."""
        fixed = self.input_spec().fixed_batch
        batch = fixed or batch
        outs = []
        for i in range(0, len(inputs), batch):
            chunk = inputs[i:i + batch]
            if fixed:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - len(chunk), axis=0)])
            outs.append(self.predict(chunk)[:len(inputs) - i, 0])
        return np.concatenate(outs)

    def predict_image(self, image: np.ndarray) -> np.ndarray:
        """Probabilities S x S for one RGB image of any size, fed the way an app feeds this artifact."""
        return self.io.output(self.run_raw(self.io.image_input(image)))[0, 0]

    def describe(self) -> dict:
        """What was loaded: runtime, file, input size, layout, device, threads."""
        return {"runtime": self.runtime, "path": str(self.path), "input_size": self.input_size,
                "layout": self.io.layout, "baked_preprocess": self.io.baked, "device": self.device,
                "threads": self.threads}
