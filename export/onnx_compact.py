"""Smaller and faster ONNX graphs of the deploy form, same function (float rounding aside).

Every rewrite keeps the file runnable in ONNX Runtime, OpenCV DNN 5.0 and ``onnx.reference``. Measured on the demo
model (``egeunet export ... --formats onnx``): int8 190,642 -> 118,782 B, fp32 277,338 -> 234,048 B, the same optimized
graph in ONNX Runtime (before the MatMul channel means, which add about 4 KB).

- ``maps_in_graph``: a folded GHPA attention map larger than what it is computed from (its 8x8 parameter, C/4 x H
  x W floats) is replaced by the nodes computing it (``onnx_maps``: MatMuls, GELU); ONNX Runtime folds them back
  into a constant when it loads the file, so the bytes go and the speed stays. int8 files store the parameter in int8.
- ``channel_means_as_matmul``: a mean over the channel axis (LayerNorm's ReduceMean) becomes a MatMul with a row
  of 1/C on the N x C x HW view: ONNX Runtime reduces NCHW over channels slowly and multiplies fast (fp32 deploy
  form 0.96x -> 0.78x a plain export's latency, one thread, ``scripts/bench_export.py``). A 1x1 convolution is as
  fast but OpenCV DNN 5.0 cannot run it.
- ``reciprocals_as_div``: ``x * Reciprocal(y)`` (torch.export's rsqrt) as ``x / y``, one node fewer per norm.
- ``gelu_half_last``: GELU's 0.5 multiplied last (OpenCV DNN 5.0 crashes on torch.export's order), bit-identical.
- ``drop_zero_points``: all-zero zero points of the weights' DequantizeLinear nodes are left out (zero is the default).
- ``bias_scales_as_products``: a QDQ convolution's bias scale is computed as input x weight scale (bit-identical).
- ``float_constants_as_int8`` (int8 files): the maps QDQ leaves float, stored in int8 (``Cast * scale``).
- ``compact_structure`` (run last): each distinct initializer stored once,
  attributes that change nothing left out (bit-identical).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from egeunet.export.onnx_maps import int8_constant, is_plane_dw, map_nodes


NODE_BYTES = 32  # a node with short value names (``onnx_export.shorten``), measured: 20 to 50 bytes


def _initializers(model) -> dict:
    return {init.name: init for init in model.graph.initializer}


def maps_in_graph(model, deploy, int8_params: bool = False) -> int:
    """Replace each large folded GHPA map initializer of ``model`` by the nodes computing it (``onnx_maps``) where
    that takes fewer bytes; returns how many. ``int8_params``: the 8x8 parameters stored in int8 (int8 artifacts).

    A map is found by its deploy-form buffer name and replaced only if its values are that buffer's exactly."""
    from onnx import numpy_helper

    from egeunet.model.deploy import FoldedGHPA

    inits = _initializers(model)
    nodes, replaced = [], 0
    produced = {out for node in model.graph.node for out in node.output}
    for path, module in deploy.named_modules():
        source = getattr(module, "xy_source", None) if isinstance(module, FoldedGHPA) else None
        if source is None or not is_plane_dw(source.conv):
            continue
        name = f"{path}.map0"
        init = inits.get(name)
        if init is None or not np.array_equal(numpy_helper.to_array(init), module.map0.numpy()):
            continue
        new_nodes, new_inits = map_nodes(source.params, source.conv, source.size, name, int8_params)
        new_inits = [i for i in new_inits if i.name not in inits]  # resize factors shared by maps of one size
        new_nodes = [n for n in new_nodes if n.output[0] not in produced]
        if sum(len(i.raw_data) for i in new_inits) + NODE_BYTES * len(new_nodes) >= len(init.raw_data):
            continue
        nodes += new_nodes
        model.graph.initializer.remove(init)
        model.graph.initializer.extend(new_inits)
        inits.update((i.name, i) for i in new_inits)
        produced.update(out for node in new_nodes for out in node.output)
        replaced += 1
    graph_nodes = nodes + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(graph_nodes)
    return replaced


def _shapes(model) -> dict[str, list[int]]:
    """Inferred shape of every value (0 for an unknown dimension), with data propagation (GHPA's split sizes)."""
    import onnx

    values = list(onnx.shape_inference.infer_shapes(model, data_prop=True).graph.value_info) + list(model.graph.input)
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


def _producers(model) -> dict:
    """Value name -> the node that writes it."""
    return {out: node for node in model.graph.node for out in node.output}


def _readers(model) -> dict[str, list]:
    """Value name -> the nodes that read it, in graph order (a node reading a value twice, x * x, listed once)."""
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in dict.fromkeys(node.input):
            readers.setdefault(name, []).append(node)
    return readers


def reduce_axes(node, inits: dict) -> list[int] | None:
    """The axes of a Reduce node, an attribute up to opset 17 and an input from 18 (None: all axes, or not a
    constant)."""
    from onnx import numpy_helper

    attribute = [list(a.ints) for a in node.attribute if a.name == "axes"]
    if attribute:
        return attribute[0]
    if len(node.input) > 1 and node.input[1] in inits:
        return numpy_helper.to_array(inits[node.input[1]]).tolist()
    return None


PER_PIXEL_OPS = ("Add", "Sqrt", "Div", "Reciprocal")  # between a LayerNorm's variance and its rsqrt


def _layer_norm_chain(node, consumers: dict) -> list | None:
    """The nodes of one exported ``RsqrtLayerNorm`` from its first channel mean ``node``: mean, Sub, square Mul, mean,
    (eps Add, Sqrt, reciprocal: per-pixel values), final Mul or Div; or None when the graph around ``node`` differs."""
    def only(value: str):
        users = consumers.get(value, [])
        return users[0] if len(users) == 1 else None

    sub = only(node.output[0])
    if sub is None or sub.op_type != "Sub" or list(sub.input) != [node.input[0], node.output[0]]:
        return None
    users = consumers.get(sub.output[0], [])
    square = next((u for u in users if u.op_type == "Mul" and list(u.input) == [sub.output[0]] * 2), None)
    final = next((u for u in users if u is not square), None)
    second = only(square.output[0]) if square is not None and len(users) == 2 else None
    if second is None or second.op_type != "ReduceMean" or final.op_type not in ("Mul", "Div") \
            or final.input[0] != sub.output[0]:  # centred x times 1/sqrt, or divided by sqrt (ORT's fusion)
        return None
    chain = [node, sub, square, second]
    while len(chain) < 8 and (user := only(chain[-1].output[0])) is not None and user.op_type in PER_PIXEL_OPS \
            and user.output[0] != final.output[0]:
        chain.append(user)
    return chain + [final] if chain[-1].output[0] in final.input else None


def channel_means_as_matmul(model) -> int:
    """Compute every LayerNorm over channels (``RsqrtLayerNorm``: mean, centre, square, mean, rsqrt, multiply) on the
    N x C x HW view, its two channel means as MatMuls with a row of 1/C; returns how many. ONNX Runtime reduces NCHW
    over channels slowly (19% of its kernel time here, ``scripts/profile_onnx.py``) and multiplies fast; one Reshape
    in and one out per norm, and OpenCV DNN and ``onnx.reference`` run it too."""
    from onnx import helper, numpy_helper

    shapes = _shapes(model)
    consumers = _readers(model)
    inits = _initializers(model)
    constants: set[str] = set()

    def constant(name: str, value: np.ndarray) -> str:
        if name not in constants:
            model.graph.initializer.append(numpy_helper.from_array(value, name))
            constants.add(name)
        return name

    before, after = {}, {}  # output name of a node -> the Reshape inserted before / after it
    viewed: set[str] = set()  # values now computed on the N x C x HW view
    for node in model.graph.node:
        shape = shapes.get(node.input[0], []) if node.op_type == "ReduceMean" else []
        chain = _layer_norm_chain(node, consumers) if len(shape) == 4 and all(shape[1:]) \
            and reduce_axes(node, inits) == [1] else None
        if chain is None:
            continue
        channels, height, width = shape[1:]
        source, (mean, sub, square, second), final = node.input[0], chain[:4], chain[-1]
        rows, out = f"{source}/rows", final.output[0]
        before[mean.output[0]] = helper.make_node("Reshape", [source, constant("rows", np.array([0, 0, -1]))], [rows])
        average = constant(f"mean_over_{channels}", np.full((1, channels), 1 / channels, np.float32))
        for reduce, values in ((mean, rows), (second, square.output[0])):
            reduce.CopyFrom(helper.make_node("MatMul", [average, values], list(reduce.output)))
        sub.input[0] = rows
        final.output[0] = f"{out}/rows"
        after[final.output[0]] = helper.make_node(
            "Reshape", [final.output[0], constant(f"nchw_{channels}x{height}x{width}",
                                                  np.array([0, channels, height, width]))], [out])
        viewed.update(n.output[0] for n in chain)
    nodes = []
    for node in model.graph.node:
        nodes += [n for n in (before.get(node.output[0]), node, after.get(node.output[0])) if n is not None]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    kept = [v for v in model.graph.value_info if v.name not in viewed]  # their recorded NCHW shapes no longer hold
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    return len(after)


def reciprocals_as_div(model) -> int:
    """Write each ``x * Reciprocal(y)`` as ``x / y`` where every reader of the reciprocal is a Mul (torch.export
    writes ``rsqrt`` as Reciprocal of Sqrt; the TorchScript exporter wrote the Div): one node fewer per norm, the
    same value to float rounding; returns how many reciprocals went."""
    readers = _readers(model)
    gone = []
    for node in model.graph.node:
        users = readers.get(node.output[0], []) if node.op_type == "Reciprocal" else []
        if not users or any(u.op_type != "Mul" or list(u.input).count(node.output[0]) != 1 for u in users):
            continue
        for user in users:
            other = next(name for name in user.input if name != node.output[0])
            user.op_type = "Div"
            user.input[:] = [other, node.input[0]]
        gone.append(node)
    for node in gone:
        model.graph.node.remove(node)
    return len(gone)


def gelu_half_last(model) -> int:
    """Write each GELU's ``x * (0.5 * (1 + erf(x / sqrt 2)))`` (torch.export's order) as ``x * (1 + erf(...)) * 0.5``
    (the TorchScript exporter's): OpenCV DNN 5.0 crashes with a segmentation fault on the first order. Bit-identical:
    a multiply by 0.5 is exact. Returns how many."""
    from onnx import numpy_helper

    inits = _initializers(model)
    readers = _readers(model)
    producer = _producers(model)

    def is_half(name: str) -> bool:
        return name in inits and numpy_helper.to_array(inits[name]).tolist() in (0.5, [0.5])

    count = 0
    for node in model.graph.node:
        half = [name for name in node.input if is_half(name)] if node.op_type == "Mul" else []
        other = [name for name in node.input if name not in half]
        users = readers.get(node.output[0], [])
        if len(half) != 1 or len(other) != 1 or getattr(producer.get(other[0]), "op_type", None) != "Add" \
                or len(users) != 1 or users[0].op_type != "Mul" or list(users[0].input).count(node.output[0]) != 1:
            continue
        x = next(name for name in users[0].input if name != node.output[0])
        node.input[:] = [x, other[0]]
        users[0].input[:] = [node.output[0], half[0]]
        count += 1
    return count


def drop_zero_points(model) -> int:
    """Leave out the all-zero zero points of DequantizeLinear nodes on stored weights (unused initializers go too);
    returns how many. Activations keep theirs: ONNX Runtime's QDQ propagation copies a DequantizeLinear's inputs into
    the QuantizeLinear it inserts after a Slice/Reshape/..., and a QuantizeLinear without a zero point outputs uint8,
    so every negative int8 value clipped to 0 (found by the per-op kernel check: a 4-epoch model's int8 file agreed
    99.77% with fp32 unoptimized, 96.95% optimized)."""
    from onnx import numpy_helper

    inits = _initializers(model)
    dropped = 0
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and len(node.input) == 3 and node.input[2] in inits \
                and node.input[0] in inits and not numpy_helper.to_array(inits[node.input[2]]).any():
            del node.input[2]
            dropped += 1
    used = {name for node in model.graph.node for name in node.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)
    return dropped


def bias_scales_as_products(model) -> int:
    """Compute each QDQ convolution's bias scale in the graph as input scale x weight scale (a Mul of the two stored
    scales) where the stored one is exactly that product in float32; returns how many. ONNX Runtime folds the Mul
    at load, before it fuses the QDQ convolution, and every output is bit-identical (demo model: ORT, OpenCV)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = _initializers(model)
    producer = _producers(model)
    nodes = []
    for node in graph.node:
        dequantized = [producer.get(name) for name in node.input]
        if node.op_type != "Conv" or len(dequantized) != 3 or any(
                d is None or d.op_type != "DequantizeLinear" or d.input[1] not in inits for d in dequantized):
            continue
        x_scale, w_scale, b_scale = (numpy_helper.to_array(inits[d.input[1]]) for d in dequantized)
        if not np.array_equal(np.multiply(x_scale, w_scale, dtype=np.float32), b_scale):
            continue
        product = f"{dequantized[2].input[1]}/product"
        nodes.append(helper.make_node("Mul", [dequantized[0].input[1], dequantized[1].input[1]], [product]))
        dequantized[2].input[1] = product
    used = {name for node in list(graph.node) + nodes for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    graph_nodes = nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(graph_nodes)
    return len(nodes)


def float_constants_as_int8(model, ops: Sequence[str] = ("Mul",)) -> int:
    """Store each float32 initializer that only ``ops`` read, each with an activation (the GHPA maps an int8 QDQ
    graph keeps float; not the constant subgraphs of ``maps_in_graph``), in int8 with one scale per channel (axis 1,
    ``onnx_maps.int8_constant``) where that takes fewer bytes; returns how many. The int8 gate decides whether the
    rounding (half a scale step) is acceptable."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    constant = {init.name for init in graph.initializer}
    for node in graph.node:  # topological order: a node of constants only computes a constant
        if all(name in constant for name in node.input if name):
            constant.update(node.output)
    users = _readers(model)
    outputs = {v.name for v in graph.output}
    nodes, count = [], 0
    for init in list(graph.initializer):
        readers = users.get(init.name, [])
        if (init.data_type != TensorProto.FLOAT or len(init.dims) < 2 or init.name in outputs or not readers
                or any(n.op_type not in ops or all(i in constant for i in n.input) for n in readers)):
            continue
        new_nodes, new_inits = int8_constant(numpy_helper.to_array(init), init.name, axis=1)
        if sum(len(i.raw_data) for i in new_inits) + NODE_BYTES * len(new_nodes) >= len(init.raw_data):
            continue  # e.g. a LayerNorm affine (1, C, 1, 1): one scale per value saves nothing
        graph.initializer.remove(init)
        graph.initializer.extend(new_inits)
        nodes += new_nodes
        count += 1
    graph_nodes = nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(graph_nodes)
    return count


def share_initializers(model) -> int:
    """Store each distinct initializer once (same type, shape and bytes): later copies are dropped and their uses
    renamed to the first; returns how many were dropped."""
    from onnx import numpy_helper

    graph = model.graph
    outputs = {v.name for v in graph.output}
    first: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        key = (init.data_type, tuple(init.dims), value.tobytes())
        if init.name in outputs:
            continue
        rename[init.name] = first.setdefault(key, init.name)
    rename = {old: new for old, new in rename.items() if old != new}
    for node in graph.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
    for init in [i for i in graph.initializer if i.name in rename]:
        graph.initializer.remove(init)
    return len(rename)


def _implied_attribute(node, attribute, opset: int, inits: dict) -> bool:
    """Whether ``attribute`` of ``node`` says nothing the op does not do without it: its schema default, Conv's
    all-ones strides and dilations, all-zero pads (defaults the schema gives in words) and kernel_shape (read from
    the weight when absent), Resize's nearest_mode outside nearest mode (unused), Reshape's allowzero for a stored
    shape without a zero (it only changes what a 0 means)."""
    from onnx import defs, helper, numpy_helper

    value = helper.get_attribute_value(attribute)
    if node.op_type == "Reshape" and attribute.name == "allowzero":
        return node.input[1] in inits and numpy_helper.to_array(inits[node.input[1]]).all()
    if node.op_type == "Conv" and attribute.name in ("strides", "dilations", "pads", "kernel_shape"):
        return attribute.name == "kernel_shape" or all(v == (0 if attribute.name == "pads" else 1) for v in value)
    if node.op_type == "Resize" and attribute.name == "nearest_mode":
        mode = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"), b"nearest")
        return mode != b"nearest"
    schema = defs.get_schema(node.op_type, opset, node.domain)
    default = schema.attributes.get(attribute.name)
    return bool(default and default.default_value.name) and helper.get_attribute_value(default.default_value) == value


def drop_default_attributes(model) -> int:
    """Leave out node attributes that change nothing (``_implied_attribute``), fewer bytes; returns how many."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    inits = _initializers(model)
    dropped = 0
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        keep = [a for a in node.attribute if not _implied_attribute(node, a, opset, inits)]
        dropped += len(node.attribute) - len(keep)
        del node.attribute[:]
        node.attribute.extend(keep)
    return dropped


def compact_structure(model) -> dict[str, int]:
    """The storage rewrites, run last (after the opset conversion): counts per rewrite."""
    return {"initializers_shared": share_initializers(model),
            "default_attributes_dropped": drop_default_attributes(model)}


def compact(model, deploy, int8: bool = False) -> dict[str, int]:
    """The rewrites above on an exported (fp32, fp16 or int8 QDQ) model of ``deploy``; counts per rewrite.
    ``int8``: an int8 artifact, whose map parameters are stored in int8 too."""
    counts = {"maps_in_graph": maps_in_graph(model, deploy, int8), "zero_points_dropped": drop_zero_points(model),
              "reciprocals_as_div": reciprocals_as_div(model), "gelu_half_last": gelu_half_last(model),
              "bias_scales_as_products": bias_scales_as_products(model),
              "channel_means_as_matmul": channel_means_as_matmul(model)}
    return counts
