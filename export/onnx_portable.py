"""int8 ONNX that runs beyond ONNX Runtime: in OpenCV DNN (5.0's default engine) and ``onnx.reference``.

Two rewrites of the quantized graph, neither changing what ONNX Runtime computes:

* opset 18 -> 19 (``onnx.version_converter``): ``onnx.reference`` implements ``DequantizeLinear`` only from
  opset 19. (onnx 1.23's converter to 21 gives ``QuantizeLinear`` an ``output_dtype`` that contradicts its
  zero point, which ONNX Runtime rejects; 19 is enough.)
* each ``MaxPool`` -> ``Reshape`` + ``ReduceMax`` (the same maximum over the same windows): OpenCV 5.0's
  default engine runs every ``MaxPool`` downstream of a ``DequantizeLinear`` as an int8 layer unless a
  ``QuantizeLinear`` follows it, so the float ``MaxPool`` after EGE-UNet's group norms fails at
  ``forward()`` (``pool2_int8_layer.cpp: inptype == CV_8SC1``). Quantizing it instead would add an
  int8 rounding that ONNX Runtime does not have today.

Not fixable here: OpenCV 5.0's fused int8 convolution (DequantizeLinear -> Conv -> QuantizeLinear) is wrong on
feature maps whose side is not a multiple of 4 (EGE-UNet's deepest map is size / 32), so in OpenCV int8 needs an
input size that is a multiple of 128; 256 is.
"""
from __future__ import annotations

import numpy as np

from egeunet.errors import EGEUNetError

PORTABLE_OPSET = 19  # first default-domain opset whose DequantizeLinear onnx.reference implements
CLIENTS = ("opencv-dnn", "onnx-reference")  # the ONNX clients besides ONNX Runtime that ``run_client`` runs


def make_portable(model) -> None:
    """Rewrite a quantized ModelProto in place so OpenCV DNN and ``onnx.reference`` run it (opset 19, no MaxPool)."""
    from onnx import helper, version_converter

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < PORTABLE_OPSET:
        model.CopyFrom(version_converter.convert_version(model, PORTABLE_OPSET))
        del model.graph.value_info[:]  # the converter's shape annotations: 40 KB the runtimes infer themselves
        model.ir_version = max(model.ir_version, helper.find_min_ir_version_for(
            [helper.make_opsetid("", PORTABLE_OPSET)]))
    _max_pools_to_reduce_max(model)


def _spatial_shapes(model) -> dict[str, list[int]]:
    """Static height and width of every MaxPool input (shape inference), by value name."""
    from onnx import shape_inference

    pooled = {n.input[0] for n in model.graph.node if n.op_type == "MaxPool"}
    inferred = shape_inference.infer_shapes(model).graph
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim][2:]
            for v in list(inferred.value_info) + list(inferred.input) if v.name in pooled}


def _max_pools_to_reduce_max(model) -> None:
    """Replace each non-overlapping, unpadded 2-D MaxPool by Reshape to N,C,H/k,k,W/k,k and ReduceMax over the k axes."""
    from onnx import helper, numpy_helper

    graph = model.graph
    shapes = _spatial_shapes(model)
    nodes = []
    for node in graph.node:
        if node.op_type != "MaxPool":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = list(attrs["kernel_shape"])
        spatial = shapes.get(node.input[0], [])
        if (len(kernel) != 2 or list(attrs.get("strides", [1, 1])) != kernel or any(attrs.get("pads", [0]))
                or attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1]))
                or len(node.output) != 1 or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID")
                or len(spatial) != 2 or any(s == 0 or s % k for s, k in zip(spatial, kernel))):
            raise EGEUNetError(f"MaxPool {node.name or node.output[0]} (kernel {kernel}, attributes {attrs}, input "
                               f"height x width {spatial}): only non-overlapping, unpadded 2-D pooling over a static "
                               "size it divides can be made portable; keep EGE-UNet's 2x2 pooling")
        (h, w), (kh, kw) = spatial, kernel
        out = node.output[0]
        shape = numpy_helper.from_array(np.array([0, 0, h // kh, kh, w // kw, kw], np.int64), out + "_windows")
        axes = numpy_helper.from_array(np.array([3, 5], np.int64), out + "_window_axes")
        graph.initializer.extend([shape, axes])
        nodes.append(helper.make_node("Reshape", [node.input[0], shape.name], [out + "_w"]))
        nodes.append(helper.make_node("ReduceMax", [out + "_w", axes.name], [out], keepdims=0))
    del graph.node[:]
    graph.node.extend(nodes)


def run_client(client: str, path, x: np.ndarray) -> np.ndarray:
    """Outputs of the ONNX file ``path`` for the batch ``x`` (as the graph takes it) in one of ``CLIENTS``, image by image."""
    if client == "opencv-dnn":
        import cv2

        net = cv2.dnn.readNetFromONNX(str(path))  # OpenCV's default engine

        def run(one: np.ndarray) -> np.ndarray:
            net.setInput(one)
            return net.forward()
    elif client == "onnx-reference":
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(str(path))
        name = evaluator.input_names[0]

        def run(one: np.ndarray) -> np.ndarray:
            return evaluator.run(None, {name: one})[0]
    else:
        raise EGEUNetError(f"unknown ONNX client {client!r}; choose from {', '.join(CLIENTS)}")
    return np.concatenate([np.asarray(run(x[i:i + 1]), np.float32) for i in range(len(x))])
