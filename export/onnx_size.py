"""Where the bytes of an ONNX file go (the ONNX counterpart of ``tflite_flatbuffer.size_breakdown``)."""
from __future__ import annotations

from collections import Counter


def _field_bytes(message) -> int:
    """Bytes ``message`` takes inside its parent's repeated field: its own bytes plus tag and length prefix."""
    size = message.ByteSize()
    return size + 1 + (size.bit_length() + 6) // 7


def size_breakdown(buf: bytes) -> dict:
    """Constant data by element type; structure (everything else: nodes, names, tensor records) in all and per op;
    node bytes by op type (a Constant node's include its data), value-name and metadata bytes, op counts."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(buf)
    graph = model.graph
    tensors = list(graph.initializer) + [helper.get_attribute_value(a) for n in graph.node if n.op_type == "Constant"
                                         for a in n.attribute if a.name == "value"]
    data_by_type: Counter = Counter()
    for tensor in tensors:
        data_by_type[onnx.TensorProto.DataType.Name(tensor.data_type)] += len(tensor.raw_data) or (
            tensor.ByteSize() - len(tensor.name) - 2 * len(tensor.dims))  # typed fields: an estimate
    node_bytes: Counter = Counter()
    for node in graph.node:
        node_bytes[node.op_type] += _field_bytes(node)
    names = {name for node in graph.node for name in list(node.input) + list(node.output) if name}
    names |= {t.name for t in graph.initializer}
    data = sum(data_by_type.values())
    return {
        "bytes": len(buf),
        "constant_data_bytes": data,
        "constant_data_by_type": dict(data_by_type.most_common()),
        "structure_bytes": len(buf) - data,
        "initializers": len(graph.initializer),
        "node_bytes": sum(node_bytes.values()),
        "node_bytes_by_op": dict(node_bytes.most_common()),
        "value_name_bytes": sum(len(n) for n in names),
        "metadata_bytes": sum(_field_bytes(p) for p in model.metadata_props),
        "ops": len(graph.node),
        "op_counts": dict(Counter(n.op_type for n in graph.node).most_common()),
        "structure_bytes_per_op": round((len(buf) - data) / max(len(graph.node), 1), 1),
    }
