"""Reading a TFLite flatbuffer without unpacking it: the contract metadata and the constant-data bytes.

Uses the generated table accessors (no object API), so a runner learns the contract in well under a millisecond
instead of converting every tensor and buffer of the model to Python objects.
"""
from __future__ import annotations

import json

from egeunet.runtime.contract import CONTRACT_KEY


def _model(buf: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema.Model.GetRootAsModel(buf, 0)


def read_metadata(buf: bytes, key: str = CONTRACT_KEY) -> dict | None:
    """The JSON stored under metadata ``key`` (None when absent)."""
    model = _model(buf)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if (entry.Name() or b"").decode() == key:
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode())
    return None


def constant_data_bytes(buf: bytes) -> int:
    """Bytes of constant data held in the model's buffers (weights, folded constants, metadata)."""
    model = _model(buf)
    return sum(model.Buffers(i).DataLength() for i in range(model.BuffersLength()))
