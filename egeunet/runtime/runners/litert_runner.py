"""LiteRT (TFLite) runner: ``ai_edge_litert`` Interpreter with XNNPACK, contract read from the model metadata."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.quiet import held
from egeunet.runtime.contract import ArtifactIO, TensorSpec
from egeunet.runtime.runners.base import Runner, register


KERNELS = ("xnnpack", "builtin", "reference")  # XNNPACK (LiteRT's default), built-in optimized, built-in reference


def per_tensor_grid(detail: dict) -> tuple[float, int] | None:
    """(scale, zero point) of a per-tensor quantized tensor from LiteRT's tensor details, None when it is not quantized
    (read from ``quantization_parameters``: LiteRT deprecates the ``quantization`` field)."""
    params = detail["quantization_parameters"]
    scales, zero_points = params["scales"], params["zero_points"]
    if len(scales) == 0:
        return None
    if len(scales) != 1:
        raise EGEUNetError(f"tensor {detail['name']!r} is quantized per channel ({len(scales)} scales), not per tensor")
    return float(scales[0]), int(zero_points[0])


def interpreter(buf: bytes, kernels: str = "xnnpack", threads: int | None = None, keep_tensors: bool = False):
    """A LiteRT Interpreter (tensors not yet allocated) on one kernel set: ``xnnpack`` (the default delegate, what
    phones' CPU path runs), ``builtin`` (LiteRT's own optimized kernels, no delegate) or ``reference`` (its reference
    kernels: slow, plain arithmetic). ``keep_tensors`` keeps every intermediate tensor readable (no delegate then)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolvers = {"xnnpack": OpResolverType.AUTO, "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                 "reference": OpResolverType.BUILTIN_REF}
    if kernels not in resolvers:
        raise EGEUNetError(f"kernels must be one of {', '.join(resolvers)}, got {kernels!r}")
    return Interpreter(model_content=buf, num_threads=threads or None, experimental_op_resolver_type=resolvers[kernels],
                       experimental_preserve_all_tensors=keep_tensors)


def _spec(detail: dict) -> TensorSpec:
    """A LiteRT tensor detail as a ``TensorSpec``: -1 in its shape signature becomes None."""
    shape = detail.get("shape_signature", detail["shape"])
    return TensorSpec(detail["name"], tuple(None if d < 0 else int(d) for d in shape), np.dtype(detail["dtype"]).name)


@register
class LiteRTRunner(Runner):
    """Batch-1 graphs run image by image; int8 I/O is (de)quantised with the tensors' own scale/zero point."""

    runtime = "litert"

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu",
                 content: bytes | None = None, contract: dict | None = None, kernels: str = "xnnpack") -> None:
        """``content``: run these flatbuffer bytes instead of reading ``path`` (an export's intermediate graph),
        with ``contract`` standing in for the metadata such a graph does not carry yet. ``kernels``: ``KERNELS``."""
        super().__init__(path, threads, device)
        if device != "cpu":
            raise EGEUNetError(f"{path}: the LiteRT runner runs on cpu only, not {device!r}")
        from egeunet.runtime.tflite_file import read_metadata

        buf = Path(path).read_bytes() if content is None else content
        native: list[str] = []  # what LiteRT writes while loading (its XNNPACK line), held off the command's output
        try:
            with held("litert", echo_on_error=False) as native:
                self.interpreter = interpreter(buf, kernels, threads)
                self.interpreter.allocate_tensors()
            contract = contract if content is not None else read_metadata(buf)
        except Exception as exc:  # the interpreter and the flatbuffer reader raise untyped errors for bad files
            errors = [line for line in native if line.startswith("ERROR")]  # LiteRT's own reason, when it gave one
            reason = (errors or str(exc).splitlines() or [type(exc).__name__])[0][:160]
            raise EGEUNetError(f"{path}: LiteRT cannot load it ({reason})") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        quant = {}
        for key, detail in (("input", self.input), ("output", self.output)):
            grid = per_tensor_grid(detail) if detail["dtype"] == np.int8 else None
            if grid is not None:
                quant.update({f"{key}_scale": grid[0], f"{key}_zero_point": grid[1]})
        self.io = ArtifactIO.from_contract(contract, self.input_spec(), **quant)

    def input_spec(self) -> TensorSpec:
        return _spec(self.input)

    def output_spec(self) -> TensorSpec:
        return _spec(self.output)

    def _fit(self, shape: tuple[int, ...]) -> None:
        """Resize a graph whose input has dynamic dimensions to ``shape`` (a fixed one keeps LiteRT's own error)."""
        signature = self.input.get("shape_signature", self.input["shape"])
        if tuple(self.input["shape"]) == shape or len(signature) != len(shape) or -1 not in signature:
            return
        self.interpreter.resize_tensor_input(self.input["index"], list(shape))
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        outs = []
        self._fit((1, *x.shape[1:]))
        for one in x:  # the graph has a fixed batch of 1
            self.interpreter.set_tensor(self.input["index"], one[None])
            self.interpreter.invoke()
            outs.append(self.interpreter.get_tensor(self.output["index"]))
        return np.concatenate(outs)

    def describe(self) -> dict:
        return {**super().describe(), "input_dtype": np.dtype(self.input["dtype"]).name}
