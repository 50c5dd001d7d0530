"""ExecuTorch's aarch64 runtime under qemu user-mode emulation: a .pte on the XNNPACK kernels a phone runs.

The executorch wheel's Python runtime cannot run here: its extension ``_C`` links libtorch (``libtorch.so``,
``libtorch_cpu.so``, ``libtorch_python.so``, ``libc10.so``), so it would need an aarch64 torch and Python under the
emulator. The wheel also ships the C++ runtime on its own (``executorch/lib/libexecutorch.so`` with the Module API,
``libexecutorch_backend_xnnpack.so``, the optimized and quantized kernels, ETDump) and its headers; the kit
(``scripts/setup_arm64.sh``) unpacks those from the aarch64 wheel of the installed executorch version and
cross-compiles ``native_check/executorch_run.cpp`` against them. Like ``litert-arm64``: one emulator process per
batch, the ARM kernels' own numbers, emulated latency not comparable with native rows.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.runtime.contract import ArtifactIO, TensorSpec
from egeunet.runtime.runners.base import register
from egeunet.runtime.runners.litert_arm64_runner import EmulatedRunner, KitPart

EXECUTORCH = KitPart("executorch-arm64", "executorch", "executorch", "executorch", "executorch_run",
                     "ExecuTorch aarch64")
_DTYPES = {0: np.uint8, 1: np.int8, 6: np.float32}  # ExecuTorch ScalarType codes: Byte, Char, Float


@register
class ExecuTorchArm64Runner(EmulatedRunner):
    """A .pte run by the aarch64 ExecuTorch C++ runtime (Module API, XNNPACK delegate, optimized portable kernels
    for what the program leaves outside XNNPACK) under qemu-aarch64."""

    runtime = "executorch-arm64"
    part = EXECUTORCH

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__(path, threads, device)
        if self.path.read_bytes()[4:8] != b"ET12":
            raise EGEUNetError(f"{path}: not an ExecuTorch program (no ET12 flatbuffer identifier)")
        proc = self.run_program(timeout=120)  # loads the program, prints its forward's input, output and contract
        info = json.loads(proc.stdout.splitlines()[0])
        for key in ("input", "output"):
            if info[f"{key}_dtype"] not in _DTYPES:
                raise EGEUNetError(f"{path}: the {key} has ExecuTorch scalar type {info[f'{key}_dtype']}; the "
                                   "executorch-arm64 runner feeds float32, int8 or uint8")
        self.in_shape, self.out_shape = info["input_shape"], info["output_shape"]
        self.in_dtype, self.out_dtype = _DTYPES[info["input_dtype"]], _DTYPES[info["output_dtype"]]
        spec = TensorSpec("input", (None, *self.in_shape[1:]), np.dtype(self.in_dtype).name)
        self.io = ArtifactIO.from_contract(info["contract"], spec)  # the program's constant method egeunet
