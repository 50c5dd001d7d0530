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


def tensor_type_names() -> dict[int, str]:
    """Schema tensor type code -> name (FLOAT32, INT8, ...)."""
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


def builtin_operator_names() -> dict[int, str]:
    """Schema builtin operator code -> name (CONV_2D, MEAN, ...)."""
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def io_tensors(buf: bytes) -> tuple[dict, dict]:
    """The main subgraph's input and output tensors: shape, type name (FLOAT32, INT8, ...), scale, zero point."""
    types = tensor_type_names()
    graph = _model(buf).Subgraphs(0)

    def describe(index: int) -> dict:
        tensor = graph.Tensors(index)
        q = tensor.Quantization()
        scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else None
        zero_point = int(q.ZeroPoint(0)) if scale is not None and q.ZeroPointLength() else 0
        return {"shape": [int(d) for d in tensor.ShapeAsNumpy()], "type": types.get(tensor.Type(), str(tensor.Type())),
                "scale": scale, "zero_point": zero_point}

    return describe(graph.Inputs(0)), describe(graph.Outputs(0))
