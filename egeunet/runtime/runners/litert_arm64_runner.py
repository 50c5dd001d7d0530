"""LiteRT's aarch64 build under qemu user-mode emulation: a .tflite on the CPU kernels a phone runs.

The kit (qemu-user, the aarch64 ``libLiteRt.so`` of the installed ai-edge-litert version, the C runner
``native_check/litert_run.c`` cross-compiled against it, a qemu prefix with an ARMv8.2 /proc/cpuinfo) is
made by ``scripts/setup_arm64.sh`` and described by its ``kit.json``. One emulator process runs a whole
batch. Numbers are the ARM kernels' own; latency is emulated and not comparable with native rows.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.runtime.contract import ArtifactIO
from egeunet.runtime.launcher import Launcher
from egeunet.runtime.runners.base import Runner, register

KIT_ENV = "EGEUNET_ARM64_KIT"  # folder holding litert-<version>/ (default ~/.cache/egeunet/arm64)
CPU_ENV = "EGEUNET_ARM64_CPU"  # qemu -cpu model instead of the kit's (e.g. max: SVE2 + SME, qemu >= 10 only)
SETUP = "run scripts/setup_arm64.sh"
_DTYPES = {"FLOAT32": np.float32, "INT8": np.int8, "UINT8": np.uint8}


@dataclass(frozen=True)
class KitPart:
    """One runtime's part of the emulation kit: the Python package whose version names its folder
    (``<folder>-<version>``) and the kit.json key of its cross-compiled runner program."""

    runtime: str  # the runtime's name, e.g. litert-arm64
    package: str  # the installed package whose aarch64 wheel the kit unpacked, e.g. ai-edge-litert
    extra: str  # the egeunet extra installing that package
    folder: str  # kit subfolder prefix; kit.json's "<folder>_version" is the package version
    program: str  # kit.json key of the runner program, e.g. litert_run
    engine: str  # the runtime as error messages name it


LITERT = KitPart("litert-arm64", "ai-edge-litert", "tflite", "litert", "litert_run", "LiteRT aarch64")


def kit_dir(part: KitPart = LITERT) -> Path:
    """Folder of the emulation kit matching the installed version of ``part``'s package."""
    try:
        version = metadata.version(part.package)
    except metadata.PackageNotFoundError:
        raise EGEUNetError(f"runtime {part.runtime!r} needs {part.package} (pip install egeunet[{part.extra}])") from None
    base = Path(os.environ.get(KIT_ENV) or Path.home() / ".cache" / "egeunet" / "arm64")
    return base / f"{part.folder}-{version}"


def load_kit(part: KitPart = LITERT) -> dict:
    """The kit's kit.json, checked: every file it names exists; one-line error saying how to install otherwise."""
    folder = kit_dir(part)
    try:
        kit = json.loads((folder / "kit.json").read_text())
        missing = [kit[k] for k in ("qemu", "prefix", part.program) if not Path(kit[k]).exists()]
    except (OSError, ValueError, KeyError):
        missing = [str(folder / "kit.json")]
    if missing:
        raise EGEUNetError(f"runtime {part.runtime!r}: the ARM64 emulation kit is not installed ({missing[0]} "
                           f"missing): {SETUP}")
    return kit


class EmulatedRunner(Runner):
    """A runner whose model runs in a cross-compiled aarch64 program of the kit under qemu-aarch64, one emulator
    process per batch. A subclass names its ``part`` and sets ``in_shape``, ``in_dtype``, ``out_shape``,
    ``out_dtype`` and ``io`` from the file."""

    part: KitPart = LITERT
    emulated = True  # latency is an emulator's, not a phone's

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__(path, threads, device)
        if device != "cpu":
            raise EGEUNetError(f"{path}: the {self.runtime} runner runs on cpu only, not {device!r}")
        self.kit = load_kit(self.part)
        self.cpu = os.environ.get(CPU_ENV) or self.kit["cpu"]
        if self.cpu.split(",")[0] == "max" and int(self.kit["qemu_version"].split(".")[0]) < 10:
            raise EGEUNetError(f"{CPU_ENV}=max needs qemu >= 10 (qemu {self.kit['qemu_version']} mis-emulates the "
                               "SME instruction SMOPA): use cortex-a76 or install qemu 10 with scripts/setup_arm64.sh")
        self.launcher = Launcher(prefix=(self.kit["qemu"], "-L", self.kit["prefix"], "-cpu", self.cpu))
        self.last_ms: list[float] = []  # emulated milliseconds of each inference of the last call
        self.in_shape: list[int] = []
        self.out_shape: list[int] = []
        self.in_dtype = self.out_dtype = np.float32

    def command(self, *args: str, options: tuple[str, ...] = ()) -> list[str]:
        """The emulator command line running the kit's runner program with ``options``, then this model and ``args``
        (IN.bin OUT.bin)."""
        return self.launcher.program(self.kit[self.part.program], *options, str(self.path), *args)

    def run_program(self, *args: str, timeout: float, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """Run the kit's program on this model under the emulator; one-line error when it fails or times out."""
        try:
            proc = self.launcher.run(self.command(*args, options=options), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EGEUNetError(f"{self.path}: {self.part.engine} under qemu -cpu {self.cpu} took over {timeout:.0f} s"
                               ) from None
        if proc.returncode != 0:
            lines = proc.stderr.splitlines()
            own = [line for line in lines if line.startswith(self.part.program + ":")]  # the program's own reason
            lines = own or [line for line in lines if not line.startswith(("INFO:", "WARNING:", "I "))]
            why = lines[-1] if lines else f"exit code {proc.returncode}"
            raise EGEUNetError(f"{self.path}: {self.part.engine} under qemu-aarch64 -cpu {self.cpu} failed: {why[:200]}")
        return proc

    def run_raw(self, x: np.ndarray, options: tuple[str, ...] = ()) -> np.ndarray:
        """The raw output for ``x`` (the artifact's own input), one emulator process for the batch; ``options`` go to
        the runner program (e.g. ExecuTorch's ``--etdump FILE``)."""
        x = np.ascontiguousarray(x, dtype=self.in_dtype)
        if list(x.shape[1:]) != self.in_shape[1:]:
            raise EGEUNetError(f"{self.path}: input {list(x.shape)} does not match the model's {self.in_shape}")
        with tempfile.TemporaryDirectory(prefix="egeunet-arm64-") as tmp:
            src, dst = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            x.tofile(src)
            # fp32 at 256 x 256 under -cpu max: about 25 s per image emulated
            proc = self.run_program(str(src), str(dst), timeout=120 + 120 * len(x), options=options)
            out = np.fromfile(dst, dtype=self.out_dtype)
        runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"input"')]
        self.last_ms = runs[-1]["ms"] if runs else []
        return out.reshape(len(x), *self.out_shape[1:])

    def describe(self) -> dict:
        version = f"{self.part.folder}_version"
        return {**super().describe(), "threads": None, "input_dtype": np.dtype(self.in_dtype).name, "emulated": True,
                "latency": "emulated (qemu user mode): not comparable with native rows",
                "emulator": f"qemu-aarch64 {self.kit['qemu_version']}", "cpu": self.cpu, version: self.kit[version]}


@register
class LiteRTArm64Runner(EmulatedRunner):
    """A .tflite run by the aarch64 LiteRT C API (XNNPACK, LiteRT's default CPU options) under qemu-aarch64."""

    runtime = "litert-arm64"
    part = LITERT

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__(path, threads, device)
        from egeunet.runtime.tflite_file import io_tensors, read_metadata

        try:
            data = self.path.read_bytes()
            if data[4:8] != b"TFL3":
                raise ValueError("no TFL3 flatbuffer identifier")
            contract = read_metadata(data)
            tensors = io_tensors(data)
        except (ValueError, IndexError, AttributeError, TypeError, UnicodeDecodeError, struct.error) as exc:
            why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise EGEUNetError(f"{path}: not a readable .tflite ({why})") from None
        for tensor in tensors:
            if tensor["type"] not in _DTYPES:
                raise EGEUNetError(f"{path}: an I/O tensor has type {tensor['type']}; the litert-arm64 runner feeds "
                                   "float32, int8 or uint8")
        (self.in_shape, self.in_dtype), (self.out_shape, self.out_dtype) = (
            (t["shape"], _DTYPES[t["type"]]) for t in tensors)
        quant = {}
        for key, tensor in zip(("input", "output"), tensors):
            if _DTYPES[tensor["type"]] == np.int8:
                quant.update({f"{key}_scale": tensor["scale"], f"{key}_zero_point": tensor["zero_point"]})
        self.io = ArtifactIO.from_contract(contract, **quant)
