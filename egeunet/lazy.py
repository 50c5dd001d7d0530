"""Lazy package attributes (PEP 562): `import egeunet` stays light, so a process that only runs an
ONNX or TFLite artifact never loads torch (and its memory does not count against that runtime)."""
from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_attributes(table: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose public names live in the modules of ``table``."""

    def __getattr__(name: str) -> object:
        if name not in table:
            raise AttributeError(name)
        return getattr(importlib.import_module(table[name]), name)

    def __dir__() -> list[str]:
        return sorted(table)

    return __getattr__, __dir__
