"""The artifact contract: what every exported file says about feeding it and reading it back.

Written and read here only: export builds it with ``make_contract`` and stores ``contract_json`` under
``CONTRACT_KEY`` in the artifact's metadata (where, is the format's: ``egeunet.runtime.formats``); every runner reads
it into an ``ArtifactIO`` through ``parse_contract``, so there is one way to feed an artifact: layout, baked
preprocessing, int8 I/O. Each contract carries its ``version`` (``CONTRACT_VERSION`` when written); a reader refuses,
in one line, a contract newer than it knows, and reads every older one (version 1 files lack no key). A baked artifact takes
uint8 pixels: ``image_input`` resizes an RGB image to the model size and rounds it (exactly what an app does);
``canonical_input`` rounds an already stretched canonical tensor to uint8, and the graph's stretch of a stretched
image is the identity (up to that rounding, at most 0.5 on the 0-255 scale).

A file made outside egeunet has no contract: ``TensorSpec`` describes its input and output from the file itself (name,
shape with dynamic dimensions as None, dtype, layout), so it can still be fed synthetic input of the right shape.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.preprocess import PREPROCESSING, preprocess, to_model_size, to_rgb

CONTRACT_KEY = "egeunet"  # metadata key holding the contract JSON in every artifact
CONTRACT_VERSION = 1  # the contract this egeunet writes; raise it when a key changes meaning or a reader must see a new one
_CHANNELS = (1, 3, 4)  # channel counts that say where an image tensor keeps its channels


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor as the file declares it: name, shape (None for a dynamic dimension), dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @property
    def layout(self) -> str:
        """"NHWC" when a 4-D tensor keeps a channel count last and not second, else "NCHW"."""
        if len(self.shape) == 4 and self.shape[-1] in _CHANNELS and self.shape[1] not in _CHANNELS:
            return "NHWC"
        return "NCHW"

    @property
    def spatial(self) -> tuple[int | None, int | None]:
        """(height, width) of a 4-D image tensor in its layout."""
        return tuple(self.shape[1:3]) if self.layout == "NHWC" else tuple(self.shape[2:4])

    @property
    def fixed_batch(self) -> int | None:
        """The batch the file fixes (its first dimension), None when dynamic."""
        return self.shape[0] if self.shape else None

    def mask_like(self) -> bool:
        """True for an N x 1 x H x W or N x H x W x 1 tensor: one probability per pixel."""
        return len(self.shape) == 4 and (self.shape[1] == 1 or self.shape[-1] == 1)

    def concrete(self, size: int | None, batch: int = 1) -> tuple[int, ...]:
        """The shape to feed: a dynamic batch becomes ``batch``, dynamic height and width ``size``; one-line errors
        for a fixed batch other than ``batch`` and for dynamic dimensions nothing fills."""
        shown = "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"
        if self.fixed_batch not in (None, batch):
            raise EGEUNetError(f"input {self.name!r} {shown} has a fixed batch of {self.fixed_batch}: use --batch "
                               f"{self.fixed_batch}")
        spatial = {1, 2} if self.layout == "NHWC" else {2, 3}
        shape = [batch if i == 0 and d is None else d for i, d in enumerate(self.shape)]
        if len(self.shape) == 4:
            if size is None and any(shape[i] is None for i in spatial):
                raise EGEUNetError(f"input {self.name!r} {shown} has a dynamic height or width: give --size")
            shape = [size if i in spatial and d is None else d for i, d in enumerate(shape)]
        if None in shape:
            raise EGEUNetError(f"input {self.name!r} {shown} has dynamic dimensions that --size and --batch do not "
                               "fill")
        return tuple(shape)


def make_contract(*, input_name: str, output_name: str, size: int, layout: str, input_dtype: str, output_dtype: str,
                  baked: bool, precision: str, variant: str, integer_only: bool,
                  runtime_options: dict | None = None) -> dict:
    """What an app must know to use an artifact: size, layout, dtypes, preprocessing, threshold, numerics."""
    return {
        "format": "egeunet-contract",
        "version": CONTRACT_VERSION,
        "input_name": input_name,
        "output_name": output_name,
        "input_size": size,
        "layout": layout,
        "input_dtype": input_dtype,
        "output_dtype": output_dtype,
        "baked_preprocess": baked,
        "preprocessing": {**PREPROCESSING, "layout": f"{layout} {input_dtype}",
                          "stretch": "done by the graph" if baked else PREPROCESSING["stretch"]},
        "threshold": PREPROCESSING["threshold"],
        "precision": precision,
        "variant": variant,
        "integer_only": integer_only,
        **({"runtime_options": runtime_options} if runtime_options else {}),
    }


def contract_json(contract: dict) -> str:
    """The contract as compact JSON, the form stored in artifact metadata."""
    return json.dumps(contract, separators=(",", ":"), sort_keys=True)


def parse_contract(text: str | bytes | dict | None) -> dict:
    """The contract stored in an artifact as a dict ({} for none); one-line error for one newer than this reader."""
    data = json.loads(text) if isinstance(text, (str, bytes)) else dict(text or {})
    version = data.get("version", 1) if data else CONTRACT_VERSION
    if not isinstance(version, int) or version > CONTRACT_VERSION:
        raise EGEUNetError(f"the artifact's egeunet contract is version {version!r}, newer than this egeunet reads "
                           f"(up to {CONTRACT_VERSION}): upgrade egeunet to run it")
    return data


def synthetic_input(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Random input of a shape and dtype for latency-only runs: uniform [0, 1) floats, integers over their range."""
    rng = np.random.default_rng(seed)
    kind = np.dtype(dtype)
    if kind.kind == "f":
        return rng.random(shape, dtype=np.float32).astype(kind)
    if kind.kind == "b":
        return rng.integers(0, 2, shape).astype(kind)
    info = np.iinfo(kind)
    return rng.integers(max(info.min, -128), min(info.max, 255) + 1, shape).astype(kind)


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
    contract: bool = True  # False: the file carries no egeunet contract; layout and size come from the file

    @classmethod
    def from_contract(cls, text: str | dict | None, spec: TensorSpec | None = None, **quant) -> "ArtifactIO":
        """Parse the contract JSON stored in the artifact; without one, ``contract`` is False and the layout and
        size come from the file's input ``spec`` (an NCHW float32 256 graph when there is none either)."""
        data = parse_contract(text)
        if not data and spec is not None:
            height = spec.spatial[0] if len(spec.shape) == 4 else None
            return cls(height or 256, spec.layout, False, spec.dtype, **quant, contract=False)
        baked = bool(data.get("baked_preprocess"))
        dtype = data.get("input_dtype", "uint8" if baked else "float32")
        return cls(int(data.get("input_size", 256)), data.get("layout", "NCHW"), baked, dtype, **quant,
                   runtime_options=dict(data.get("runtime_options") or {}), contract=bool(data))

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
        """The artifact's output -> float32 probabilities N x 1 x H x W (an N x H x W x 1 output reshaped)."""
        out = np.asarray(out)
        if self.output_scale is not None:
            out = (out.astype(np.float32) - self.output_zero_point) * self.output_scale
        out = out.astype(np.float32)
        if out.ndim == 4 and out.shape[1] != 1 and out.shape[-1] == 1:
            return out.reshape(len(out), 1, *out.shape[1:3])
        return out.reshape(-1, 1, self.size, self.size) if self.layout == "NHWC" else out
