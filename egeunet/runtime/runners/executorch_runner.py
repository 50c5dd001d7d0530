"""ExecuTorch runner: a ``.pte``'s ``forward`` in ExecuTorch's Python runtime (``executorch.runtime.Runtime``, with the
XNNPACK delegate built in), contract read from the program's ``egeunet`` constant method.

The Python runtime imports torch (its tensors are torch tensors), so this runner costs a torch import in the process
that runs it (about 1-2 s and a few hundred MB), unlike the ONNX Runtime and LiteRT runners; an app's runtime
(the ExecuTorch AAR or Swift package) has no torch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.quiet import held
from egeunet.runtime.contract import CONTRACT_KEY, ArtifactIO, TensorSpec
from egeunet.runtime.runners.base import Runner, register

SCALAR_TYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64", 11: "bool"}


def load_program(path: Path):
    """The ExecuTorch program of a ``.pte`` (methods not yet loaded); one-line error for a file it cannot read."""
    from executorch.runtime import Runtime

    try:
        with held("executorch", echo_on_error=False):
            return Runtime.get().load_program(Path(path))
    except Exception as exc:  # the runtime raises untyped errors for bad files
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise EGEUNetError(f"{path}: ExecuTorch cannot load it ({reason})") from None


def read_contract(program) -> str | None:
    """The contract JSON the program's ``egeunet`` constant method returns (None without that method)."""
    if CONTRACT_KEY not in program.method_names:
        return None
    return program.load_method(CONTRACT_KEY).execute([])[0]


def forward_method(program, threads: int | None = None):
    """The program's ``forward``, loaded with ExecuTorch's thread pool sized to ``threads`` (process-wide: the last
    call sets it); the runtime's CPU-probe and thread-pool lines to stderr are held."""
    with held("executorch", echo_on_error=False):
        if threads:
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

            _unsafe_reset_threadpool(threads)
        return program.load_method("forward")


def tensor_specs(program, method: str = "forward") -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of a method as ``TensorSpec``s (ExecuTorch's method metadata: fixed shapes, no names)."""
    meta = program.metadata(method)

    def spec(kind: str, info) -> TensorSpec:
        return TensorSpec(kind, tuple(int(d) for d in info.sizes()), SCALAR_TYPES.get(info.dtype(), str(info.dtype())))

    return ([spec("input", meta.input_tensor_meta(i)) for i in range(meta.num_inputs())],
            [spec("output", meta.output_tensor_meta(i)) for i in range(meta.num_outputs())])


@register
class ExecuTorchRunner(Runner):
    """``forward`` of a batch-1 program, run image by image; ``threads`` sizes ExecuTorch's thread pool (process-wide:
    the last runner opened sets it)."""

    runtime = "executorch"

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__(path, threads, device)
        if device != "cpu":
            raise EGEUNetError(f"{path}: the ExecuTorch runner runs on cpu only, not {device!r}")
        program = load_program(path)
        self.method = forward_method(program, threads)
        inputs, outputs = tensor_specs(program)
        self.input, self.output = inputs[0], outputs[0]
        self.io = ArtifactIO.from_contract(read_contract(program), self.input)

    def input_spec(self) -> TensorSpec:
        return self.input

    def output_spec(self) -> TensorSpec:
        return self.output

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        import torch

        return np.concatenate([self.method.execute([torch.from_numpy(np.ascontiguousarray(one[None]))])[0].numpy()
                               for one in x])
