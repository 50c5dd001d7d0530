"""Compacting a TFLite flatbuffer: the same graph and numbers in fewer bytes (outputs bit-identical).

About 70% of an EGE-UNet int8 TFLite is structure, not weights (shared/notes/int8-tflite-bytes.md).
``compact`` removes what the interpreter never reads or reads twice:
- every identical vector (shapes, zero points, scales, op input lists) and table (quantization records,
  option tables, tensors) is written once and shared by offset, which flatbuffers allow;
- names stay only on the graph's input and output tensors;
- float tensors carry no empty quantization table, static tensors no shape signature equal to the shape;
- option tables whose every field is the schema default, and every default zero, are omitted
  (the interpreter then reads the same zero-initialised parameters);
- identical constant buffers are stored once, non-constant tensors point at the empty buffer 0;
- equal SLICEs that cut one tensor into consecutive pieces along one axis become one SPLIT;
- a MEAN without kept dims, plus a scalar, then a RESHAPE that puts the reduced axes back as 1 (LayerNorm's
  variance + eps, as the converter emits it) becomes the MEAN with kept dims plus the scalar: one op fewer;
- tensors, buffers and op codes nothing refers to any more are dropped.
"""
from __future__ import annotations

from collections import defaultdict

import flatbuffers
import numpy as np

from egeunet.export import tflite_flatbuffer as fb
from egeunet.runtime.tflite_file import tensor_type_names

ELEMENT_BYTES = {"FLOAT32": 4, "INT32": 4, "INT64": 8, "FLOAT16": 2, "INT16": 2, "FLOAT64": 8, "UINT32": 4}


def compact(buf: bytes) -> bytes:
    """``buf`` rewritten with shared vectors and tables, no redundant records and SLICE runs as SPLIT."""
    model = fb.load(buf)
    _slices_to_split(model)
    _keep_reduced_dims(model)
    for sg in model.subgraphs:
        _strip_tensors(sg)
        for op in sg.operators or []:
            if op.builtinOptions is not None and _all_zero_defaults(op.builtinOptions):
                op.builtinOptions, op.builtinOptionsType = None, 0
    _share_buffers(model)
    _drop_unused(model)
    return _pack_shared(model)


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _strip_tensors(sg) -> None:
    """Names only on the graph input/output; no empty quantization; no shape signature equal to the shape."""
    keep = set(int(i) for i in sg.inputs) | set(int(i) for i in sg.outputs)
    for i, t in enumerate(sg.tensors):
        if i not in keep:
            t.name = None
        q = t.quantization
        if q is not None and not any(_size(v) for v in (q.scale, q.zeroPoint, q.min, q.max)) and q.details is None:
            t.quantization = None
        if t.shapeSignature is not None and np.array_equal(t.shapeSignature, t.shape):
            t.shapeSignature = None


def _size(values) -> int:
    return 0 if values is None else len(values)


def _all_zero_defaults(options) -> bool:
    """True when every field equals the schema default and every default is zero/false/empty."""
    defaults = vars(type(options)())
    return all(not d and _same(v, d) for v, d in zip(vars(options).values(), defaults.values()))


def _same(value, default) -> bool:
    if isinstance(value, np.ndarray) or isinstance(default, np.ndarray):
        return _size(value) == 0 and _size(default) == 0
    return value == default


def _const(model, sg, index: int) -> np.ndarray | None:
    """int32 values of a constant tensor (None when the tensor is not a constant)."""
    data = model.buffers[sg.tensors[index].buffer].data
    return None if data is None or not len(data) else np.asarray(data, dtype=np.uint8).view("<i4")


def _slices_to_split(model) -> None:
    """Every group of SLICEs that cuts one tensor into equal consecutive pieces along one axis -> one SPLIT."""
    schema = _schema()
    names = fb.op_names(model)
    if "SLICE" not in names:
        return
    split_code = _opcode(model, schema.BuiltinOperator.SPLIT)
    position = 0
    for sg in model.subgraphs:
        ops = list(sg.operators or [])
        by_source: dict[int, list[int]] = defaultdict(list)
        for k, op in enumerate(ops):
            if names[position + k] == "SLICE":
                by_source[int(op.inputs[0])].append(k)
        position += len(ops)
        replaced: dict[int, object] = {}
        for source, members in by_source.items():
            split = _as_split(model, sg, source, [ops[k] for k in members], split_code)
            if split is not None:
                replaced.update({k: None for k in members})
                replaced[min(members)] = split
        sg.operators = [replaced.get(k, op) for k, op in enumerate(ops) if replaced.get(k, op) is not None]


def _keep_reduced_dims(model) -> None:
    """MEAN(keep_dims=False) -> ADD(scalar constant) -> RESHAPE(to the MEAN's shape with kept dims) becomes
    MEAN(keep_dims=True) -> ADD: the same values in the same order, the RESHAPE dropped."""
    names = fb.op_names(model)
    position = 0
    for sg in model.subgraphs:
        ops = list(sg.operators or [])
        kinds = names[position:position + len(ops)]
        position += len(ops)
        producer = {int(o): k for k, op in enumerate(ops) for o in op.outputs}
        uses: dict[int, int] = defaultdict(int)
        for op in ops:
            for i in op.inputs:
                uses[int(i)] += 1
        for t in sg.outputs:
            uses[int(t)] += 1
        dropped: dict[int, int] = {}  # RESHAPE output -> the ADD output that replaces it
        for k, op in enumerate(ops):
            add = producer.get(int(op.inputs[0])) if kinds[k] == "RESHAPE" else None
            if add is None or kinds[add] != "ADD" or uses[int(op.inputs[0])] != 1:
                continue
            mean = _mean_and_scalar(model, sg, ops, kinds, producer, uses, add)
            if mean is None:
                continue
            source, out = sg.tensors[int(ops[mean].inputs[0])], sg.tensors[int(op.outputs[0])]
            axes = {int(a) % len(source.shape) for a in _const(model, sg, int(ops[mean].inputs[1]))}
            kept = [1 if d in axes else int(n) for d, n in enumerate(source.shape)]
            if [int(n) for n in out.shape] != kept:
                continue
            if ops[mean].builtinOptions is None:
                ops[mean].builtinOptionsType = _schema().BuiltinOptions.ReducerOptions
                ops[mean].builtinOptions = _schema().ReducerOptionsT()
            ops[mean].builtinOptions.keepDims = True
            for t in (ops[mean].outputs[0], ops[add].outputs[0]):
                sg.tensors[int(t)].shape = np.array(kept, np.int32)
            dropped[int(op.outputs[0])] = int(ops[add].outputs[0])
        if dropped:
            for op in ops:
                op.inputs = np.array([dropped.get(int(i), int(i)) for i in op.inputs], np.int32)
            sg.operators = [op for op in ops if not (len(op.outputs) and int(op.outputs[0]) in dropped)]


def _mean_and_scalar(model, sg, ops, kinds, producer, uses, add: int) -> int | None:
    """Index of the MEAN (keep_dims False, output used only by ``add``) that ``add`` adds a scalar constant to."""
    inputs = [int(i) for i in ops[add].inputs]
    for tensor, other in (inputs, inputs[::-1]):
        mean = producer.get(tensor)
        scalar = sg.tensors[other]
        if (mean is not None and kinds[mean] == "MEAN" and uses[tensor] == 1 and not _option(ops[mean], "keepDims")
                and model.buffers[scalar.buffer].data is not None and not len(scalar.shape)
                and not _option(ops[add], "fusedActivationFunction")):
            return mean
    return None


def _option(op, field: str):
    """An op's builtin option, or its zero default when the options table is omitted."""
    return getattr(op.builtinOptions, field) if op.builtinOptions is not None else 0


def _as_split(model, sg, source: int, slices: list, split_code: int):
    """A SPLIT op equal to ``slices`` (all reading ``source``), or None when they are not an even partition."""
    schema = _schema()
    shape = [int(d) for d in sg.tensors[source].shape]
    cuts = []
    for op in slices:
        begin, size = _const(model, sg, int(op.inputs[1])), _const(model, sg, int(op.inputs[2]))
        if begin is None or size is None or len(begin) != len(shape):
            return None
        size = [shape[d] - int(b) if s == -1 else int(s) for d, (b, s) in enumerate(zip(begin, size))]
        cut = [d for d in range(len(shape)) if size[d] != shape[d]]
        if len(cut) != 1 or any(int(begin[d]) for d in range(len(shape)) if d != cut[0]):
            return None
        cuts.append((cut[0], int(begin[cut[0]]), size[cut[0]], int(op.outputs[0])))
    axis, _, piece, _ = cuts[0]
    cuts.sort(key=lambda c: c[1])
    if (len(cuts) < 2 or any(c[0] != axis or c[2] != piece or c[1] != i * piece for i, c in enumerate(cuts))
            or piece * len(cuts) != shape[axis]):
        return None
    axis_tensor = schema.TensorT()
    axis_tensor.shape, axis_tensor.type = np.zeros(0, np.int32), schema.TensorType.INT32
    axis_buffer = schema.BufferT()
    axis_buffer.data = np.frombuffer(np.int32(axis).astype("<i4").tobytes(), np.uint8).copy()
    model.buffers.append(axis_buffer)
    axis_tensor.buffer = len(model.buffers) - 1
    sg.tensors.append(axis_tensor)
    op = schema.OperatorT()
    op.opcodeIndex = split_code
    op.inputs = np.array([len(sg.tensors) - 1, source], np.int32)
    op.outputs = np.array([c[3] for c in cuts], np.int32)
    op.builtinOptionsType = schema.BuiltinOptions.SplitOptions
    op.builtinOptions = schema.SplitOptionsT()
    op.builtinOptions.numSplits = len(cuts)
    return op


def _opcode(model, builtin: int) -> int:
    """Index of the op code for ``builtin``, added when the model has none."""
    schema = _schema()
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _share_buffers(model) -> None:
    """Identical constant data -> one buffer; tensors without data -> the empty buffer 0."""
    first: dict[bytes, int] = {}
    for sg in model.subgraphs:
        for t in sg.tensors:
            data = model.buffers[t.buffer].data
            if data is None or not len(data):
                t.buffer = 0
            else:
                t.buffer = first.setdefault(bytes(np.asarray(data, np.uint8)), t.buffer)


def _drop_unused(model) -> None:
    """Remove tensors no op or graph I/O uses, buffers no tensor or metadata uses, op codes no op uses."""
    for sg in model.subgraphs:
        used = sorted({int(i) for op in sg.operators for i in list(op.inputs) + list(op.outputs)
                       + list(op.intermediates if op.intermediates is not None else []) if i >= 0}
                      | {int(i) for i in sg.inputs} | {int(i) for i in sg.outputs})
        new = {old: k for k, old in enumerate(used)}
        sg.tensors = [sg.tensors[i] for i in used]
        remap = np.vectorize(lambda i: new.get(int(i), -1), otypes=[np.int32])
        for op in sg.operators:
            op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
            if op.intermediates is not None and len(op.intermediates):
                op.intermediates = remap(op.intermediates)
        sg.inputs, sg.outputs = remap(sg.inputs), remap(sg.outputs)
    used_buffers = sorted({0} | {t.buffer for sg in model.subgraphs for t in sg.tensors}
                          | {m.buffer for m in model.metadata or []})
    new_buffer = {old: k for k, old in enumerate(used_buffers)}
    model.buffers = [model.buffers[i] for i in used_buffers]
    for sg in model.subgraphs:
        for t in sg.tensors:
            t.buffer = new_buffer[t.buffer]
    for m in model.metadata or []:
        m.buffer = new_buffer[m.buffer]
    used_codes = sorted({op.opcodeIndex for sg in model.subgraphs for op in sg.operators})
    new_code = {old: k for k, old in enumerate(used_codes)}
    model.operatorCodes = [model.operatorCodes[i] for i in used_codes]
    for sg in model.subgraphs:
        for op in sg.operators:
            op.opcodeIndex = new_code[op.opcodeIndex]


class _Shared:
    """A table packed once per distinct content: later equal tables reuse the first one's offset."""

    def __init__(self, table, key) -> None:
        self.table, self.key = table, key

    def Pack(self, builder) -> int:  # noqa: N802 (the flatbuffers object API's name)
        offset = builder.tables.get(self.key)
        if offset is None:
            offset = builder.tables[self.key] = self.table.Pack(builder)
        return offset


def _key(value):
    """Hashable content of an object-API value (tables compare by their fields, recursively)."""
    if isinstance(value, _Shared):
        return value.key
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_key(v) for v in value)
    if hasattr(value, "Pack"):
        return (type(value).__name__,) + tuple((k, _key(v)) for k, v in vars(value).items())
    return value


def _pack_shared(model) -> bytes:
    """Pack ``model`` writing each distinct vector, string and table once; data aligned to its element size."""
    types = tensor_type_names()
    alignment: dict[int, int] = {}
    for sg in model.subgraphs:
        for t in sg.tensors:
            size = ELEMENT_BYTES.get(types.get(t.type), 1)
            alignment[t.buffer] = max(alignment.get(t.buffer, 1), size)
    for k, b in enumerate(model.buffers):
        if b.data is not None:
            b.data = np.asarray(b.data, np.uint8)
    align_of = {id(b.data): alignment.get(k, 1) for k, b in enumerate(model.buffers) if b.data is not None}

    def share(table):
        return None if table is None else _Shared(table, _key(table))

    for sg in model.subgraphs:
        for t in sg.tensors:
            t.quantization = share(t.quantization)
        sg.tensors = [share(t) for t in sg.tensors]
        for op in sg.operators:
            op.builtinOptions = share(op.builtinOptions)
    builder = _SharingBuilder(align_of)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


VECTOR_ALIGN = 4
"""Where a flatbuffers vector's data starts: right after its 4-byte length, so ``CreateNumpyVector`` (public API) aligns
any data to 4 bytes. Only a buffer of 8-byte elements (INT64, FLOAT64) needs more, which the public API cannot give
without writing bytes of its own: that path uses the Builder's internals (``StartVector``, ``Bytes``, ``head``) and
``tests/test_tflite_compact.py`` fails, naming them, if a flatbuffers release moves them."""


class _SharingBuilder(flatbuffers.Builder):
    """A flatbuffers Builder that writes each distinct numpy vector and string once."""

    def __init__(self, align_of: dict[int, int]) -> None:
        super().__init__(1024)
        self.tables: dict = {}
        self._vectors: dict = {}
        self._align_of = align_of

    def CreateNumpyVector(self, x: np.ndarray) -> int:  # noqa: N802
        align = self._align_of.get(id(x), x.dtype.alignment)
        key = ("v", x.dtype.str, x.tobytes(), align)
        if key not in self._vectors:
            if align <= max(x.dtype.alignment, VECTOR_ALIGN):
                self._vectors[key] = super().CreateNumpyVector(x)
            else:
                self.StartVector(x.itemsize, x.size, align)
                payload = x.astype(x.dtype.newbyteorder("<")).tobytes()
                self.head -= len(payload)
                self.Bytes[self.head:self.head + len(payload)] = payload
                self._vectors[key] = self.EndVector()
        return self._vectors[key]

    def CreateString(self, s, encoding: str = "utf-8", errors: str = "strict") -> int:  # noqa: N802
        key = ("s", s if isinstance(s, bytes) else s.encode(encoding, errors))
        if key not in self._vectors:
            self._vectors[key] = super().CreateString(s, encoding, errors)
        return self._vectors[key]
