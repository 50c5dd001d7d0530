"""ONNX: fp32 (TorchScript exporter, opset 17, dynamic batch, onnxsim), fp16 and int8 (ORT static QDQ).

fp16 stores the convolution weights in float16 and casts them back to float32 in the graph (ORT folds
the casts at load): float16 compute throughout (onnxruntime's float16 converter) measured 4e-3 max
|Δprob| on a lightly trained model, twice the fp16 gate. int8: per-channel int8 convolution weights,
int8 activations around convolutions (QDQ); normalisation, GELU, resize and attention ops stay float by default (``quantize_ops``).
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections import Counter
from pathlib import Path

from egeunet.atomic import atomic_write
from egeunet.export.base import CONTRACT_KEY, FORMATS, Exporter, contract_json, register
from egeunet.export.spec import ExportSpec, FormatConfig, Variant

CONFIG = FormatConfig(name="onnx", suffix=".onnx", runtime="onnxruntime", precisions=("fp32", "fp16", "int8"),
                      opset=17)
QUANTIZE_OPS = ("Conv",)  # op types given int8 QDQ; the rest stays float


def _to_onnx(deploy, spec: ExportSpec, path: str) -> None:
    """TorchScript export at opset 17 with a dynamic batch, then onnxsim."""
    import onnx
    import onnxsim
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(deploy, (deploy.example_input(),), path, dynamo=False, opset_version=CONFIG.opset,
                          input_names=[CONFIG.input_name], output_names=[CONFIG.output_name],
                          dynamic_axes={CONFIG.input_name: {0: "batch"}, CONFIG.output_name: {0: "batch"}})
    model, ok = onnxsim.simplify(onnx.load(path))
    if not ok:
        model = onnx.load(path)
    dims = model.graph.output[0].type.tensor_type.shape.dim  # onnxsim leaves generated names: state the shape
    for dim, value in zip(dims[1:], spec.output_shape[1:]):
        dim.dim_value = value
    onnx.save(model, path)


def shorten(model) -> None:
    """Short value names, no node names, doc strings or value_info: fewer bytes, same numbers."""
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, format(len(names), "x"))

    for init in graph.initializer:
        init.name = short(init.name)
    for node in graph.node:
        node.name = ""
        node.doc_string = ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    del graph.value_info[:]
    graph.doc_string = ""
    model.doc_string = ""


def float16_weights(model) -> None:
    """Store convolution weights as float16, each followed by a Cast to float32 (as TFLite's fp16 recipe)."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    conv_weights = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx_float32() or init.name not in conv_weights:
            continue
        value = numpy_helper.to_array(init).astype(np.float16)
        name = init.name
        init.CopyFrom(numpy_helper.from_array(value, name + "_h"))
        casts.append(helper.make_node("Cast", [name + "_h"], [name], to=onnx_float32()))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def onnx_float32() -> int:
    """The ONNX element type code of float32."""
    from onnx import TensorProto

    return TensorProto.FLOAT


class _Calibration:
    """onnxruntime CalibrationDataReader over the calibration images, one image per call."""

    def __init__(self, inputs) -> None:
        self._items = iter([{CONFIG.input_name: x[None]} for x in inputs])

    def get_next(self):
        return next(self._items, None)


def _quantize(fp32_path: str, out: str, spec: ExportSpec, ops: tuple[str, ...]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from egeunet.export.io import ArtifactIO

    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(fp32_path, pre, skip_symbolic_shape=True)
        io = ArtifactIO(spec.size, spec.layout, spec.bake_preprocess, "uint8")
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[spec.calib_method]
        quantize_static(pre, out, _Calibration(io.images_input(spec.calibration.images)),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=method, op_types_to_quantize=list(ops))


@register
class OnnxExporter(Exporter):
    """ONNX exporter; ``quantize_ops`` widens the int8 op types (e.g. add "Mul", "Add")."""

    config = CONFIG
    quantize_ops = QUANTIZE_OPS

    def variants(self, precision: str, spec: ExportSpec) -> list[Variant]:
        method = {"fp32": "TorchScript exporter opset 17, onnxsim",
                  "fp16": "float16 convolution weights cast to float32 in the graph (float32 compute and I/O)",
                  "int8": f"ORT static QDQ, per-channel int8 weights, int8 activations on "
                          f"{', '.join(self.quantize_ops)}, {spec.calib_method} calibration"}[precision]
        return [Variant(precision, precision, method)]

    def export(self, deploy, spec: ExportSpec, out_path: Path, variant: Variant) -> Path:
        import onnx

        def write(tmp: str) -> None:
            with tempfile.TemporaryDirectory() as work:
                fp32 = os.path.join(work, "fp32.onnx")
                _to_onnx(deploy, spec, fp32)
                if variant.precision == "int8":
                    _quantize(fp32, tmp, spec, self.quantize_ops)
                    model = onnx.load(tmp)
                else:
                    model = onnx.load(fp32)
                if variant.precision == "fp16":
                    float16_weights(model)
            shorten(model)
            del model.metadata_props[:]
            entry = model.metadata_props.add()
            entry.key, entry.value = CONTRACT_KEY, contract_json(spec, CONFIG, variant)
            model.producer_name = "egeunet"
            onnx.save(model, tmp)

        atomic_write(out_path, write)
        return Path(out_path)

    def describe(self, path: Path) -> dict:
        import onnx

        model = onnx.load(str(path))

        def io(values) -> list[dict]:
            return [{"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                     "shape": [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]} for v in values]

        ops = Counter(n.op_type for n in model.graph.node)
        quantized = sorted(set(self.quantize_ops) & set(ops)) if ops["QuantizeLinear"] else []
        float_ops = sorted(set(ops) - set(quantized) - {"QuantizeLinear", "DequantizeLinear"}) if quantized else []
        return {"inputs": io(model.graph.input), "outputs": io(model.graph.output), "opset": model.opset_import[0].version,
                "ops": sum(ops.values()), "op_counts": dict(ops.most_common()),
                "quantization": {"int8_ops": quantized, "float_fallback_ops": float_ops} if quantized else None,
                "contract": json.loads({p.key: p.value for p in model.metadata_props}.get(CONTRACT_KEY, "null"))}


export, validate, describe = FORMATS[CONFIG.name].export, FORMATS[CONFIG.name].validate, FORMATS[CONFIG.name].describe
