"""The artifact contract: what every exported file says about feeding it and reading it back.

Export writes the contract (JSON under ``CONTRACT_KEY`` in the artifact's metadata); every runner reads it into an
``ArtifactIO``, so there is one way to feed an artifact: layout, baked preprocessing, int8 I/O. A baked artifact takes
uint8 pixels: ``image_input`` resizes an RGB image to the model size and rounds it (exactly what an app does);
``canonical_input`` rounds an already stretched canonical tensor to uint8, and the graph's stretch of a stretched
image is the identity (up to that rounding, at most 0.5 on the 0-255 scale).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from egeunet.preprocess import preprocess, to_model_size, to_rgb

CONTRACT_KEY = "egeunet"  # metadata key holding the contract JSON in every artifact


@dataclass(frozen=True)
class ArtifactIO:
    """The parts of the contract a runner needs, plus int8 quantisation parameters of the I/O tensors."""

    size: int = 256
    layout: str = "NCHW"
    baked: bool = False
    input_dtype: str = "float32"  # a baked CoreML graph takes float32 pixel values, others uint8
    input_scale: float | None = None  # set for int8 I/O
    input_zero_point: int = 0
    output_scale: float | None = None
    output_zero_point: int = 0
    runtime_options: dict = field(default_factory=dict)  # runtime -> recommended session options, e.g. ORT's

    @classmethod
    def from_contract(cls, text: str | dict | None, **quant) -> "ArtifactIO":
        """Parse the contract JSON stored in the artifact (None: a plain NCHW float32 256 graph)."""
        data = json.loads(text) if isinstance(text, str) else dict(text or {})
        baked = bool(data.get("baked_preprocess"))
        dtype = data.get("input_dtype", "uint8" if baked else "float32")
        return cls(int(data.get("input_size", 256)), data.get("layout", "NCHW"), baked, dtype, **quant,
                   runtime_options=dict(data.get("runtime_options") or {}))

    def _layout(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if self.layout == "NHWC" else x)

    def _pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 N x 3 x S x S -> the baked graph's input (its layout; float32 where uint8 is not allowed)."""
        return self._layout(pixels).astype(self.input_dtype, copy=False)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if self.input_scale is None:
            return x
        return np.clip(np.rint(x / self.input_scale) + self.input_zero_point, -128, 127).astype(np.int8)

    def canonical_input(self, batch: np.ndarray) -> np.ndarray:
        """Canonical N x 3 x S x S float32 -> the artifact's input (layout, uint8 when baked, int8 I/O)."""
        batch = np.asarray(batch, np.float32)
        if self.baked:
            return self._pixels(np.clip(np.rint(batch), 0, 255).astype(np.uint8))
        return self._quantize(self._layout(batch))

    def images_input(self, images: np.ndarray) -> np.ndarray:
        """uint8 images N x S x S x 3 at the model size -> the artifact's input."""
        if self.baked:
            return self._pixels(images.transpose(0, 3, 1, 2))
        return self.canonical_input(preprocess(images, self.size))

    def image_input(self, image: np.ndarray) -> np.ndarray:
        """One RGB image of any size -> a batch-1 artifact input (the app's path)."""
        if self.baked:
            return self.images_input(to_model_size(to_rgb(np.asarray(image)), self.size)[None])
        return self.canonical_input(preprocess(image, self.size))

    def output(self, out: np.ndarray) -> np.ndarray:
        """The artifact's output -> float32 probabilities N x 1 x S x S."""
        out = np.asarray(out)
        if self.output_scale is not None:
            out = (out.astype(np.float32) - self.output_zero_point) * self.output_scale
        out = out.astype(np.float32)
        return out.reshape(-1, 1, self.size, self.size) if self.layout == "NHWC" else out
