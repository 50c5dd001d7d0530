"""Installed versions of the libraries egeunet's numbers depend on, for manifests and reports."""
from __future__ import annotations

from importlib import metadata

LIBRARIES = ("egeunet", "torch", "numpy", "opencv-python-headless", "onnx", "onnxruntime", "onnxsim",
             "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "coremltools")


def library_versions() -> dict[str, str | None]:
    """Version of each library in LIBRARIES (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found
