"""ONNX: fp32 (torch.onnx's exporter on ``capture``'s torch.export program, opset 18, dynamic batch, onnxsim),
fp16 and int8 (ORT static QDQ).

fp16 stores the convolution weights in float16 and casts them back to float32 in the graph (ORT folds
the casts at load): float16 compute throughout (onnxruntime's float16 converter) measured 4e-3 max
|Δprob| on a lightly trained model, twice the fp16 gate. int8: per-channel int8 convolution weights,
int8 activations around convolutions (QDQ); normalisation, GELU, resize and attention ops stay float by default (``quantize_ops``).
With ``spec.int8_drift_budget`` the most int8-sensitive convolutions (ranked on the calibration images) stay float
until the budget holds; the choice is stored in the artifact (``BUDGET_KEY``) and the manifest. The int8 graph is then
made portable (``onnx_portable``: opset 19, MaxPool as ReduceMax) so OpenCV DNN and ``onnx.reference`` run it too.
The int8 ladder's dynamic-range form (int8 weights, float activations) stores the convolution weights in int8 with a
DequantizeLinear each, on the float graph (``stored_weights``).
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egeunet.atomic import atomic_write
from egeunet.export.capture import capture
from egeunet.export.base import BUDGET_KEY, Exporter, contract_json, register
from egeunet.export.onnx_compact import compact, compact_structure, float_constants_as_int8
from egeunet.export.onnx_portable import make_portable
from egeunet.runtime.byte_accounting import onnx_accounting
from egeunet.export.recipes import Recipe, budget_note, float_recipe
from egeunet.export.spec import ExportSpec, FormatConfig
from egeunet.quiet import held
from egeunet.runtime.contract import CONTRACT_KEY
from egeunet.runtime.runners.onnx_runner import DISABLED_OPTIMIZERS

CONFIG = FormatConfig(name="onnx", precisions=("fp32", "fp16", "int8"), opset=18, float_form="for_onnx",
                      runtime_options={"onnxruntime": {"disabled_optimizers": DISABLED_OPTIMIZERS}})
QUANTIZE_OPS = ("Conv",)  # op types given int8 QDQ; the rest stays float
EVAL_BATCH = 8  # images per ORT run while searching


@held("torch.onnx")
def _exported(deploy):
    """The ModelProto of torch.onnx's exporter (built on torch.export) for ``capture``'s program, dynamic batch; its
    log lines ("torchvision is not installed ...") are held back (``egeunet.quiet``)."""
    import torch

    program = torch.onnx.export(capture(deploy, dynamic_batch=True), dynamo=True, opset_version=CONFIG.opset,
                                input_names=[CONFIG.input_name], output_names=[CONFIG.output_name], optimize=True,
                                verbose=False)
    return program.model_proto


def _to_onnx(deploy, spec: ExportSpec, path: str) -> None:
    """``_exported``, layer names from its node metadata, the metadata stripped, then onnxsim."""
    import onnx
    import onnxsim

    model = _exported(deploy)
    name_by_scope(model, QUANTIZE_OPS)
    strip_metadata(model)
    # onnxsim would merge consecutive means into one long reduction: the staged GroupNorm means (``for_onnx``) stay
    model, ok = onnxsim.simplify(model, skipped_optimizers=["fuse_consecutive_reduce"])
    if not ok:
        raise RuntimeError("onnxsim could not check the simplified graph against the exported one")
    dims = model.graph.output[0].type.tensor_type.shape.dim  # state the output shape past the batch
    for dim, value in zip(dims[1:], spec.output_shape[1:]):
        dim.ClearField("dim_param")
        dim.dim_value = value
    onnx.save(model, path)


SCOPES_KEY = "pkg.torch.onnx.name_scopes"  # node metadata of torch.onnx's exporter: module path, then the node
MODEL_ROOT = "net."  # the deploy form's EGE-UNet: layer names are its module paths, as ``EGEUNet.named_modules``


def name_by_scope(model, ops: Sequence[str]) -> int:
    """Name every node of ``ops`` by the module that made it, read from the exporter's node metadata ('encoder.3.
    block.dw.0', as ``EGEUNet.named_modules`` names it), so sensitivity tables and drift-budget records name layers;
    returns how many were named."""
    import ast

    named = 0
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == SCOPES_KEY), None)
        path = ast.literal_eval(scopes)[:-1] if node.op_type in ops and scopes else []
        if path and path[-1]:
            node.name = path[-1].removeprefix(MODEL_ROOT)
            named += 1
    return named


def strip_metadata(model) -> None:
    """Drop the exporter's per-node and per-value metadata (stack traces, FX nodes, scopes: most of the bytes of a
    fresh export) and its model-level properties."""
    for node in model.graph.node:
        del node.metadata_props[:]
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        del value.metadata_props[:]
    for init in model.graph.initializer:
        del init.metadata_props[:]
    del model.graph.metadata_props[:]
    del model.metadata_props[:]


NAME_CHARACTERS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"  # generated value names


def _names(count: int, taken: set[str]) -> list[str]:
    """``count`` distinct short names (one character, then two, ...) that are not in ``taken``."""
    names: list[str] = []
    for length in itertools.count(1):
        for chars in itertools.product(NAME_CHARACTERS, repeat=length):
            if len(names) == count:
                return names
            if "".join(chars) not in taken:
                names.append("".join(chars))
    return names


def shorten(model, named_ops: Sequence[str] = QUANTIZE_OPS) -> None:
    """Short value names (the most used get the shortest); no doc strings, value_info, empty name or domain
    fields, or node names except ``named_ops`` layers (their module paths, ~25 bytes each, so sensitivity tables
    name them): fewer bytes, same numbers."""
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    uses = Counter(name for node in graph.node for name in list(node.input) + list(node.output) if name)
    uses.update(init.name for init in graph.initializer)
    ranked = [name for name, _ in uses.most_common() if name not in keep]
    names = dict(zip(ranked, _names(len(ranked), keep)))

    def short(name: str) -> str:
        return names.get(name, name)

    for init in graph.initializer:
        init.name = short(init.name)
    for node in graph.node:
        if node.op_type not in named_ops or not node.name:
            node.ClearField("name")
        if not node.domain:
            node.ClearField("domain")
        node.ClearField("doc_string")
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    del graph.value_info[:]
    graph.ClearField("doc_string")
    model.ClearField("doc_string")


def stored_weights(model, dtype: str) -> None:
    """Store convolution weights as ``dtype``, each turned back into float32 in the graph: float16 by a Cast (as
    TFLite's fp16 recipe), int8 (symmetric, one scale per output channel) by a DequantizeLinear, so the convolutions
    compute in float on int8 weights (the ladder's dynamic-range form, ``recipes.INT8_LADDER``)."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    conv_weights = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    decoders = []
    for init in list(graph.initializer):
        if init.data_type != onnx_float32() or init.name not in conv_weights:
            continue
        value, name = numpy_helper.to_array(init), init.name
        if dtype == "float16":
            init.CopyFrom(numpy_helper.from_array(value.astype(np.float16), name + "_h"))
            decoders.append(helper.make_node("Cast", [name + "_h"], [name], to=onnx_float32()))
            continue
        peak = np.abs(value.reshape(len(value), -1)).max(1)
        scale = np.where(peak > 0, peak / 127, 1).astype(np.float32)
        codes = np.clip(np.round(value / scale.reshape(-1, *[1] * (value.ndim - 1))), -127, 127).astype(np.int8)
        init.CopyFrom(numpy_helper.from_array(codes, name + "_q"))
        graph.initializer.append(numpy_helper.from_array(scale, name + "_s"))
        decoders.append(helper.make_node("DequantizeLinear", [name + "_q", name + "_s"], [name], axis=0))
    nodes = decoders + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def onnx_float32() -> int:
    """The ONNX element type code of float32."""
    from onnx import TensorProto

    return TensorProto.FLOAT


class _Calibration:
    """onnxruntime CalibrationDataReader over the calibration inputs, one image per call."""

    def __init__(self, inputs: np.ndarray) -> None:
        self._items = iter([{CONFIG.input_name: x[None]} for x in inputs])

    def get_next(self):
        return next(self._items, None)


def quantize(src: str | Path, out: str | Path, inputs: np.ndarray, calib_method: str = "minmax",
             ops: Sequence[str] = QUANTIZE_OPS, nodes_to_quantize: list[str] | None = None,
             nodes_to_exclude: Sequence[str] = (), cache: str | Path | None = None) -> Path:
    """ORT static QDQ of ``src``: per-channel int8 weights, int8 activations on ``ops`` (all nodes or ``nodes_to_quantize``,
    minus ``nodes_to_exclude``), calibrated on ``inputs`` (as the graph takes them).

    ``cache``: a JSON file of calibration ranges, written by the first call and read by later ones, so a search over
    many node sets calibrates once (demo model, 64 images at 256 px: 2.3 s calibrating vs 0.4 s from the cache).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[calib_method]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT logs one warning per bias on the root logger
    try:
        quantize_static(str(src), str(out), _Calibration(inputs), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=method,
                        op_types_to_quantize=list(ops), nodes_to_quantize=nodes_to_quantize,
                        nodes_to_exclude=list(nodes_to_exclude), calibration_cache_path=cache)
    finally:
        root.setLevel(level)
    return Path(out)


def name_layers(model, ops: Sequence[str]) -> list[str]:
    """Every node of ``ops`` keeps its module path (``name_by_scope``), ``<op>_<index>`` if it has none, ``#<index>``
    added to a repeated one; the names in graph order."""
    names: list[str] = []
    for i, node in enumerate(model.graph.node):
        if node.op_type in ops:
            name = node.name or f"{node.op_type}_{i}"
            node.name = f"{name}#{i}" if name in names else name
            names.append(node.name)
    return names


def _predict(path: str | Path, inputs: np.ndarray) -> np.ndarray:
    """Outputs of an ONNX file for ``inputs`` (as the graph takes them), EVAL_BATCH images per run."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {CONFIG.input_name: inputs[i:i + EVAL_BATCH]})[0]
                           for i in range(0, len(inputs), EVAL_BATCH)])


def _budget_search(pre: str, layers: list[str], inputs: np.ndarray, spec: ExportSpec, ops: Sequence[str],
                   work: str) -> tuple[Path, dict]:
    """``sensitivity.budget_search`` with ORT QDQ: calibrate once (cached ranges), score against the fp32 graph."""
    from egeunet.accuracy import compare
    from egeunet.export.sensitivity import budget_search

    def probabilities(path) -> np.ndarray:  # N x S x S whatever the layout (NCHW N x 1 x S x S, NHWC N x S x S x 1)
        return _predict(path, inputs).reshape(len(inputs), spec.size, spec.size)

    reference = probabilities(pre)
    cache = os.path.join(work, "calibration.json")
    count = itertools.count()

    def write(**nodes) -> Path:
        return quantize(pre, os.path.join(work, f"q{next(count)}.onnx"), inputs, spec.calib_method, ops, cache=cache,
                        **nodes)

    return budget_search(layers, spec.int8_drift_budget, len(inputs), lambda path: compare(probabilities(path), reference),
                         lambda layer: write(nodes_to_quantize=[layer]), lambda kept: write(nodes_to_exclude=kept))


def _int8(fp32: str, spec: ExportSpec, ops: Sequence[str], work: str) -> tuple[Path, dict | None]:
    """Pre-process, name the layers and quantize ``fp32``; with a drift budget, the search's file and record."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from egeunet.runtime.contract import ArtifactIO

    pre = os.path.join(work, "pre.onnx")
    quant_pre_process(fp32, pre, skip_symbolic_shape=True)
    model = onnx.load(pre)
    layers = name_layers(model, ops)
    onnx.save(model, pre)
    inputs = ArtifactIO(spec.size, spec.layout, spec.bake_preprocess, "uint8").images_input(spec.calibration.images)
    if spec.int8_drift_budget is None:
        return quantize(pre, os.path.join(work, "int8.onnx"), inputs, spec.calib_method, ops), None
    return _budget_search(pre, layers, inputs, spec, ops, work)


# The convolutions of ``for_onnx``'s form whose weights an fp16 file stores in float16 (read from the files'
# constants, tests/test_export.py): all but the GHPA map convolutions (``compact`` adds them after the rounding); the
# TorchScript exporter folded GELU's 0.5 into the next convolution's weight as a Constant, which stayed float32
FLOAT16_CONVS = r"(?!.*\.xy_source\.).*"


@register
class OnnxExporter(Exporter):
    """ONNX exporter; ``quantize_ops`` widens the int8 op types (e.g. add "Mul", "Add")."""

    config = CONFIG
    quantize_ops = QUANTIZE_OPS

    def recipes(self, precision: str, spec: ExportSpec, int8_io: bool = False) -> list[Recipe]:
        if precision == "fp32":
            return [float_recipe("fp32", "torch.onnx exporter on torch.export, opset 18, onnxsim")]
        if precision == "fp16":
            return [float_recipe("fp16", "float16 convolution weights cast to float32 in the graph (float32 compute and I/O)",
                                 FLOAT16_CONVS)]
        return [Recipe("int8", "int8", weights="int8", activations="int8", scales="calibration",
                       int8_ops=tuple(self.quantize_ops),
                       method=f"ORT static QDQ, per-channel int8 weights, int8 activations on "
                              f"{', '.join(self.quantize_ops)}, {spec.calib_method} calibration; opset 19, MaxPool as "
                              "ReduceMax (runs in OpenCV DNN and onnx.reference too)" + budget_note(spec))]

    def export(self, deploy, spec: ExportSpec, out_path: Path, recipe: Recipe) -> Path:
        import onnx

        from egeunet.model.deploy import for_onnx

        form = for_onnx(deploy, float_graph=not recipe.static)  # int8: no channel statistics, see for_onnx

        def write(tmp: str) -> None:
            with tempfile.TemporaryDirectory() as work:
                fp32 = os.path.join(work, "fp32.onnx")
                _to_onnx(form, spec, fp32)
                budget = None
                if recipe.static:
                    chosen, budget = _int8(fp32, spec, self.quantize_ops, work)
                    model = onnx.load(str(chosen))
                else:
                    model = onnx.load(fp32)
                if not recipe.static and recipe.weights != "float32":
                    stored_weights(model, recipe.weights)
                compact(model, form, int8=recipe.static)  # maps in the graph, GroupNorm, ...
                if recipe.static:
                    float_constants_as_int8(model)  # the GHPA maps left float by the QDQ pass
                    make_portable(model)  # opset 19, MaxPool as ReduceMax: OpenCV DNN and onnx.reference run it too
                compact_structure(model)  # each distinct initializer stored once, no default attributes
            name_layers(model, self.quantize_ops)
            shorten(model, self.quantize_ops)
            del model.metadata_props[:]
            entry = model.metadata_props.add()
            entry.key, entry.value = CONTRACT_KEY, contract_json(spec, CONFIG, recipe)
            if budget is not None:
                entry = model.metadata_props.add()
                entry.key, entry.value = BUDGET_KEY, json.dumps(budget, separators=(",", ":"))
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

        props = {p.key: p.value for p in model.metadata_props}
        breakdown = onnx_accounting(Path(path).read_bytes())
        ops = Counter(breakdown["op_counts"])
        quantized = sorted(set(self.quantize_ops) & set(ops)) if ops["QuantizeLinear"] else []
        float_ops = sorted(set(ops) - set(quantized) - {"QuantizeLinear", "DequantizeLinear"}) if quantized else []
        quantization = ({"int8_ops": quantized, "float_fallback_ops": float_ops} if quantized else
                        {"int8_weight_ops": ["Conv"]} if ops["DequantizeLinear"] else None)  # weights only: dynamic
        return {"inputs": io(model.graph.input), "outputs": io(model.graph.output), "opset": model.opset_import[0].version,
                "ops": breakdown["ops"], "op_counts": breakdown["op_counts"], "quantization": quantization,
                "contract": json.loads(props.get(CONTRACT_KEY, "null")),
                "int8_drift_budget": json.loads(props.get(BUDGET_KEY, "null")), "size_breakdown": breakdown}

