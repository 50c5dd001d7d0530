"""Where an artifact's bytes go: constant data by element type, and structure (everything else) in all and per op.

One record shape (``record``) for every format with an accounting (TFLite and ONNX here; each format's descriptor in
``egeunet.runtime.formats`` names its function), read by ``egeunet info``, the exporters' ``describe`` and the
benchmark report's size section, so a user sees whether a file is weights or graph. Formats without one give their
weight bytes alone (``weight_bytes``: CoreML's ``weights/`` files, a checkpoint's tensors).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path


def record(size: int, data_by_type: Counter, ops: Counter, **extra) -> dict:
    """The accounting record of a file of ``size`` bytes: constant data bytes by type, ops by type, ``extra`` keys."""
    data = sum(data_by_type.values())
    count = sum(ops.values())
    return {"bytes": size, "constant_data_bytes": data, "constant_data_by_type": dict(data_by_type.most_common()),
            "structure_bytes": size - data, "ops": count, "structure_bytes_per_op": round((size - data) / max(count, 1), 1),
            "op_counts": dict(ops.most_common()), **extra}


def tflite_accounting(buf: bytes) -> dict:
    """TFLite: each constant buffer counted once, under the element type of the first tensor using it (metadata
    buffers as "metadata"); structure = tables, vectors, quantization records, names and padding."""
    from ai_edge_litert import schema_py_generated as schema

    from egeunet.runtime.tflite_file import builtin_operator_names, tensor_type_names

    model = schema.Model.GetRootAsModel(buf, 0)
    types = tensor_type_names()
    owner: dict[int, str] = {model.Metadata(i).Buffer(): "metadata" for i in range(model.MetadataLength())}
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        codes.append(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
    builtin = builtin_operator_names()
    ops: Counter = Counter()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            owner.setdefault(tensor.Buffer(), types.get(tensor.Type(), str(tensor.Type())))
        for o in range(graph.OperatorsLength()):
            ops[builtin.get(codes[graph.Operators(o).OpcodeIndex()], "CUSTOM")] += 1
    data: Counter = Counter()
    for b in range(model.BuffersLength()):
        length = model.Buffers(b).DataLength()
        if length:
            data[owner.get(b, "unused")] += length
    return record(len(buf), data, ops)


def _field_bytes(message) -> int:
    """Bytes ``message`` takes inside its parent's repeated field: its own bytes plus tag and length prefix."""
    size = message.ByteSize()
    return size + 1 + (size.bit_length() + 6) // 7


def onnx_accounting(buf: bytes) -> dict:
    """ONNX: initializer and Constant-node data by element type; plus node bytes by op type (a Constant node's
    include its data), value-name and metadata bytes, initializer count."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(buf)
    graph = model.graph
    tensors = list(graph.initializer) + [helper.get_attribute_value(a) for n in graph.node if n.op_type == "Constant"
                                         for a in n.attribute if a.name == "value"]
    data: Counter = Counter()
    external = 0  # bytes of tensors kept in external data files: not in this file, so not subtracted from its size
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            external += int({e.key: e.value for e in tensor.external_data}.get("length") or 0)
            continue
        data[onnx.TensorProto.DataType.Name(tensor.data_type)] += (len(tensor.raw_data)
                                                                   or numpy_helper.to_array(tensor).nbytes)
    node_bytes: Counter = Counter()
    for node in graph.node:
        node_bytes[node.op_type] += _field_bytes(node)
    names = {name for node in graph.node for name in list(node.input) + list(node.output) if name}
    names |= {t.name for t in graph.initializer}
    return record(len(buf), data, Counter(n.op_type for n in graph.node), initializers=len(graph.initializer),
                   node_bytes=sum(node_bytes.values()), node_bytes_by_op=dict(node_bytes.most_common()),
                   value_name_bytes=sum(len(n) for n in names),
                   metadata_bytes=sum(_field_bytes(p) for p in model.metadata_props), external_data_bytes=external)


def accounting(path: str | Path) -> dict | None:
    """The byte accounting of a file whose format has one (``FileFormat.accounting``), else None."""
    from egeunet.runtime.formats import format_of

    fmt = format_of(path)
    return fmt.accounting(Path(path).read_bytes()) if fmt is not None and fmt.accounting is not None else None


def weight_bytes(path: str | Path, counted: dict | None = None) -> int | None:
    """Weight bytes of an artifact: the constant data of its accounting (``counted``, when already computed), else
    its format's ``weight_bytes``; None when unknown."""
    from egeunet.runtime.formats import format_of

    counted = counted if counted is not None else accounting(path)
    if counted is not None:
        return counted["constant_data_bytes"]
    fmt = format_of(path)
    return fmt.weight_bytes(Path(path)) if fmt is not None and fmt.weight_bytes is not None else None


def coreml_weight_bytes(path: Path) -> int | None:
    """Bytes of an .mlpackage's ``weights/`` files (None for an .mlmodel: its weights are inside the protobuf)."""
    if not path.is_dir():
        return None
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "weights" in p.relative_to(path).parts)


def torch_weight_bytes(path: Path) -> int:
    """Bytes of the tensors of a PyTorch checkpoint's state dict."""
    from egeunet.checkpoint import read_checkpoint

    obj = read_checkpoint(path)
    state = obj.get("state_dict", obj.get("model_state_dict", obj))
    return sum(v.numel() * v.element_size() for v in state.values() if hasattr(v, "element_size"))


def summary(record: dict) -> str:
    """One line: data by kind, structure and bytes per op."""
    kinds = ", ".join(f"{k.lower()} {v:,}" for k, v in record["constant_data_by_type"].items())
    external = record.get("external_data_bytes")
    return (f"data {record['constant_data_bytes']:,} ({kinds or 'none in the file'})"
            + (f", {external:,} more in external data files" if external else "")
            + f"; structure {record['structure_bytes']:,} ({record['ops']} ops, "
              f"{record['structure_bytes_per_op']:.0f} B/op)")
