"""One descriptor per model format: every fact about a format that more than one part of egeunet needs.

A ``FileFormat`` names the format's file suffixes, the runtimes that run it (the first is its default) with the
module of each runtime's runner, the module of its exporter, where an artifact keeps its contract, how its bytes
divide into weights and structure, and whether the phone and web demos get golden vectors for it. The runner
registry (``egeunet.runtime.runners``), the exporter registry (``egeunet.export``), ``egeunet info``, the benchmark's
sizes, ``byte_accounting`` and the golden vectors all read ``FORMATS`` and nothing else.

Adding a format (ExecuTorch ``.pte``, say) is three pieces, nothing else to edit:

1. a runner: a module defining a ``Runner`` subclass decorated with ``egeunet.runtime.runners.register``, whose
   ``runtime`` is the runtime's name; it reads the contract with ``ArtifactIO.from_contract``;
2. an exporter: a module defining an ``Exporter`` subclass decorated with ``egeunet.export.base.register``, whose
   ``config`` is a ``FormatConfig`` with the format's ``name``; it stores ``contract_json(spec, config, recipe)``
   under ``CONTRACT_KEY`` in the file;
3. one ``add_format(FileFormat(...))`` here (or in a plugin), naming both modules, the suffixes, the function that
   reads the stored contract back and, optionally, the byte accounting.

``tests/test_format_descriptor.py`` does exactly this for a ``torch.export`` ``.pt2`` format and checks that every
consumer above sees it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from egeunet.errors import EGEUNetError
from egeunet.runtime import byte_accounting
from egeunet.runtime.contract import CONTRACT_KEY, parse_contract

_RUNNERS = "egeunet.runtime.runners"
_EXPORT = "egeunet.export"


@dataclass(frozen=True)
class FileFormat:
    """One model format: suffixes, runtimes and their runners, exporter, contract reader, byte accounting."""

    name: str
    suffixes: tuple[str, ...]  # lower case, with the dot; the first is the one its exporter writes
    runtimes: dict[str, str]  # runtime name -> module registering its runner; the first is the format's default
    exporter: str | None = None  # module registering its exporter; None: egeunet does not export to it
    contract: Callable[[Path], str | dict | None] | None = None  # the contract stored in a file, None when absent
    accounting: Callable[[bytes], dict] | None = None  # byte_accounting's record of one file's bytes
    weight_bytes: Callable[[Path], int | None] | None = None  # weight bytes where there is no full accounting
    golden: bool = False  # the phone and web demos run it: export writes golden vectors for it

    @property
    def suffix(self) -> str:
        """The suffix its exporter writes."""
        return self.suffixes[0]

    @property
    def default_runtime(self) -> str:
        """The runtime a file of this format opens in unless another is named."""
        return next(iter(self.runtimes))


FORMATS: dict[str, FileFormat] = {}


def add_format(fmt: FileFormat) -> FileFormat:
    """Register a format; one-line error when its name, a suffix or a runtime is already another format's."""
    for other in FORMATS.values():
        if other.name == fmt.name:
            raise EGEUNetError(f"format {fmt.name!r} is already registered")
        taken = set(other.suffixes) & set(fmt.suffixes) or set(other.runtimes) & set(fmt.runtimes)
        if taken:
            raise EGEUNetError(f"format {fmt.name!r}: {sorted(taken)[0]!r} is already format {other.name!r}'s")
    FORMATS[fmt.name] = fmt
    return fmt


def list_formats() -> list[str]:
    """Names of every format egeunet knows (checkpoints included)."""
    return list(FORMATS)


def file_format(name: str) -> FileFormat:
    """The descriptor of a format by name; one-line error naming the known ones."""
    if name not in FORMATS:
        raise EGEUNetError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return FORMATS[name]


def format_of(path: str | Path) -> FileFormat | None:
    """The format of a file (or package folder) by its suffix; None for an unknown one."""
    suffix = Path(path).suffix.lower()
    return next((f for f in FORMATS.values() if suffix in f.suffixes), None)


def export_formats() -> list[str]:
    """Names of the formats egeunet exports to (those whose descriptor names an exporter)."""
    return [f.name for f in FORMATS.values() if f.exporter]


def is_checkpoint(path: str | Path) -> bool:
    """Whether a file is a PyTorch checkpoint by its suffix (the "pytorch" format: .pt, .pth)."""
    fmt = format_of(path)
    return fmt is not None and fmt.name == "pytorch"


def all_suffixes() -> list[str]:
    """Every suffix of every format, in registration order."""
    return [s for f in FORMATS.values() for s in f.suffixes]


def runner_modules() -> dict[str, str]:
    """Runtime name -> module registering its runner, over every format."""
    return {runtime: module for f in FORMATS.values() for runtime, module in f.runtimes.items()}


def format_of_runtime(runtime: str) -> FileFormat | None:
    """The format a runtime runs (None for an unknown runtime)."""
    return next((f for f in FORMATS.values() if runtime in f.runtimes), None)


def read_contract(path: str | Path) -> dict | None:
    """The egeunet contract stored in an artifact (None when it has none); one-line error when it is newer than this
    egeunet reads (``contract.parse_contract``)."""
    fmt = format_of(path)
    raw = fmt.contract(Path(path)) if fmt is not None and fmt.contract is not None else None
    return parse_contract(raw) if raw else None


def _onnx_contract(path: Path) -> str | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}.get(CONTRACT_KEY)


def _tflite_contract(path: Path) -> dict | None:
    from egeunet.runtime.tflite_file import read_metadata

    return read_metadata(path.read_bytes())


def _coreml_contract(path: Path) -> str | None:
    from coremltools.models.utils import load_spec

    return load_spec(str(path)).description.metadata.userDefined.get(CONTRACT_KEY)


def _executorch_contract(path: Path) -> str | None:
    from egeunet.runtime.runners.executorch_runner import load_program, read_contract

    return read_contract(load_program(path))


add_format(FileFormat("pytorch", (".pt", ".pth"), {"pytorch": f"{_RUNNERS}.torch_runner"},
                      weight_bytes=byte_accounting.torch_weight_bytes))
add_format(FileFormat("onnx", (".onnx",), {"onnxruntime": f"{_RUNNERS}.onnx_runner"}, f"{_EXPORT}.onnx_export",
                      _onnx_contract, byte_accounting.onnx_accounting, golden=True))
add_format(FileFormat("tflite", (".tflite",), {"litert": f"{_RUNNERS}.litert_runner",  # litert-arm64: emulated, slow
                                               "litert-arm64": f"{_RUNNERS}.litert_arm64_runner"},
                      f"{_EXPORT}.tflite_export", _tflite_contract, byte_accounting.tflite_accounting, golden=True))
add_format(FileFormat("coreml", (".mlpackage", ".mlmodel"), {"coreml": f"{_RUNNERS}.coreml_runner"},
                      f"{_EXPORT}.coreml_export", _coreml_contract, weight_bytes=byte_accounting.coreml_weight_bytes))
add_format(FileFormat("executorch", (".pte",), {"executorch": f"{_RUNNERS}.executorch_runner",  # -arm64: emulated
                                                 "executorch-arm64": f"{_RUNNERS}.executorch_arm64_runner"},
                      f"{_EXPORT}.executorch_export", _executorch_contract))
