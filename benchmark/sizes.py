"""Bytes on disk, gzip bytes, and weights versus graph bytes of one artifact, by format.

Weights are what the format's descriptor (``egeunet.runtime.formats``) counts: ONNX initializers and Constant-node
tensors; TFLite buffers (inline or appended); CoreML `weights/` files of an .mlpackage; the tensors of a PyTorch
checkpoint. Graph is everything else in the file(s).
"""
from __future__ import annotations

import gzip
from pathlib import Path

from egeunet.runtime.byte_accounting import accounting, weight_bytes


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def artifact_sizes(path: str | Path) -> dict:
    """``bytes``, ``gzip_bytes`` (each file gzipped at level 9), ``weight_bytes`` and ``graph_bytes`` (None if unknown),
    and for formats with a byte accounting (TFLite, ONNX) its ``accounting`` (data by type, bytes per op)."""
    path = Path(path)
    files = _files(path)
    size = sum(p.stat().st_size for p in files)
    gz = sum(len(gzip.compress(p.read_bytes(), compresslevel=9, mtime=0)) for p in files)
    record = accounting(path)
    weights = weight_bytes(path, record)
    return {"bytes": size, "gzip_bytes": gz, "weight_bytes": weights,
            "graph_bytes": None if weights is None else size - weights, "accounting": record}
