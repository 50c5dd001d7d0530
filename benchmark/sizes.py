"""Bytes on disk, gzip bytes, and weights versus graph bytes of one artifact, by format.

Weights are: ONNX initializers and Constant-node tensors; TFLite buffers (inline or appended); CoreML `weights/` files of an
.mlpackage; the tensors of a PyTorch checkpoint. Graph is everything else in the file(s).
"""
from __future__ import annotations

import gzip
from pathlib import Path

from egeunet.runtime.byte_accounting import accounting


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def _coreml_weight_bytes(path: Path) -> int | None:
    if not path.is_dir():
        return None  # a .mlmodel keeps its weights inside the protobuf
    return sum(p.stat().st_size for p in _files(path) if "weights" in p.relative_to(path).parts)


def _torch_weight_bytes(path: Path) -> int:
    from egeunet.checkpoint import read_checkpoint

    obj = read_checkpoint(path)
    state = obj.get("state_dict", obj.get("model_state_dict", obj))
    return sum(v.numel() * v.element_size() for v in state.values() if hasattr(v, "element_size"))


_WEIGHTS = {".mlpackage": _coreml_weight_bytes, ".mlmodel": _coreml_weight_bytes, ".pt": _torch_weight_bytes, ".pth": _torch_weight_bytes}


def artifact_sizes(path: str | Path) -> dict:
    """``bytes``, ``gzip_bytes`` (each file gzipped at level 9), ``weight_bytes`` and ``graph_bytes`` (None if unknown),
    and for TFLite and ONNX files the ``accounting`` of ``runtime.byte_accounting`` (data by type, bytes per op)."""
    path = Path(path)
    files = _files(path)
    size = sum(p.stat().st_size for p in files)
    gz = sum(len(gzip.compress(p.read_bytes(), compresslevel=9, mtime=0)) for p in files)
    record = accounting(path)  # .onnx and .tflite: weights are its constant data
    reader = _WEIGHTS.get(path.suffix.lower())
    weights = record["constant_data_bytes"] if record else reader(path) if reader else None
    return {"bytes": size, "gzip_bytes": gz, "weight_bytes": weights,
            "graph_bytes": None if weights is None else size - weights, "accounting": record}
