"""Reading and trimming a TFLite flatbuffer: op codes (Flex/custom rejection), metadata, names, size breakdown.

Trimming never changes a number: tensor names become short ids, the signature and converter debug
metadata are dropped, and the egeunet contract is added as a metadata entry.
"""
from __future__ import annotations

from collections import Counter

from egeunet.errors import EGEUNetError
from egeunet.runtime.contract import CONTRACT_KEY
from egeunet.runtime.tflite_file import builtin_operator_names, tensor_type_names

KEEP_METADATA = (b"min_runtime_version", CONTRACT_KEY.encode())


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def load(buf: bytes):
    """Unpacked ``ModelT`` of a flatbuffer."""
    schema = _schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))


def dump(model) -> bytes:
    """Pack a ``ModelT`` back into flatbuffer bytes (with the TFL3 identifier)."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_names(model) -> list[str]:
    """Name of every operator in every subgraph, e.g. CONV_2D, or CUSTOM:<code> / FLEX:<code>."""
    builtin = builtin_operator_names()
    codes = []
    for code in model.operatorCodes:
        number = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = builtin.get(number, f"UNKNOWN_{number}")
        if name == "CUSTOM":
            custom = (code.customCode or b"").decode(errors="replace")
            name = f"FLEX:{custom}" if custom.startswith("Flex") else f"CUSTOM:{custom}"
        codes.append(name)
    return [codes[op.opcodeIndex] for sg in model.subgraphs for op in (sg.operators or [])]


def reject_unsupported_ops(names: list[str], where: str = "artifact") -> None:
    """One-line error when any op is a Flex (TensorFlow) or custom op: phones run builtin ops only."""
    bad = sorted({n for n in names if n.startswith(("FLEX:", "CUSTOM:"))})
    if bad:
        raise EGEUNetError(f"{where}: has ops the LiteRT builtin runtime cannot run: {', '.join(bad)}")


def trim(buf: bytes, contract: str, input_name: str, output_name: str, extra: dict[str, str] | None = None) -> bytes:
    """Short tensor names, no signature or debug metadata, the contract (and ``extra`` entries) as metadata; numbers
    untouched. The main subgraph's (subgraph 0) input and output get ``input_name`` and ``output_name``.
    """
    schema = _schema()
    model = load(buf)
    for sg in model.subgraphs:
        for i, tensor in enumerate(sg.tensors):
            tensor.name = f"t{i}".encode()
        sg.name = None
    main = model.subgraphs[0]
    main.tensors[main.inputs[0]].name = input_name.encode()
    main.tensors[main.outputs[0]].name = output_name.encode()
    model.signatureDefs = []
    model.description = None
    keep = [m for m in (model.metadata or []) if m.name in KEEP_METADATA and m.name != CONTRACT_KEY.encode()]
    for key, text in {CONTRACT_KEY: contract, **(extra or {})}.items():
        entry = schema.MetadataT()
        entry.name = key.encode()
        data = schema.BufferT()
        data.data = list(text.encode())
        model.buffers.append(data)
        entry.buffer = len(model.buffers) - 1
        keep.append(entry)
    model.metadata = keep
    model.metadataBuffer = None
    return dump(model)


def size_breakdown(buf: bytes) -> dict:
    """``runtime.byte_accounting``'s record (data by type, structure, bytes per op) plus tensor, quantisation-record
    and name counts."""
    from egeunet.runtime.byte_accounting import tflite_accounting

    model = load(buf)
    tensors = [t for sg in model.subgraphs for t in sg.tensors]
    quantized = [t for t in tensors if t.quantization is not None and t.quantization.scale is not None
                 and len(t.quantization.scale)]
    return {
        **tflite_accounting(buf),
        "tensor_name_bytes": sum(len(t.name or b"") for t in tensors),
        "tensors": len(tensors),
        "quantized_tensors": len(quantized),
        "quant_scale_values": sum(len(t.quantization.scale) for t in quantized),
        "metadata": [m.name.decode() for m in model.metadata or []],
    }


def quantization_summary(model) -> dict | None:
    """Which op kinds compute in int8 (int8 output) and which stay float, read from the tensors; None if all float32."""
    types = tensor_type_names()
    names = op_names(model)
    int8, floating, weights = set(), set(), Counter()
    ops = [op for sg in model.subgraphs for op in (sg.operators or [])]
    tensors = [sg.tensors for sg in model.subgraphs for _ in (sg.operators or [])]
    for name, op, table in zip(names, ops, tensors):
        out = types[table[op.outputs[0]].type]
        if name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        (int8 if out in ("INT8", "INT16") else floating).add(name)
        for i in op.inputs:
            if i >= 0 and table[i].buffer and model.buffers[table[i].buffer].data is not None:
                weights[types[table[i].type]] += 1
    if not int8 and set(weights) <= {"FLOAT32", "INT32"}:
        return None
    return {"int8_ops": sorted(int8), "float_fallback_ops": sorted(floating),
            "constant_tensor_types": dict(weights), "quantize_ops": names.count("QUANTIZE"),
            "dequantize_ops": names.count("DEQUANTIZE")}
