"""TFLite through litert-torch (no TensorFlow): fp32, fp16 weights, dynamic-range int8 and full int8.

Every recipe starts from an fp32 conversion of the deploy form's LiteRT copy (``deploy.for_litert``: its float graph
for fp32 and fp16, the quantizable one for int8); the others are ai-edge-quantizer recipes on it. Static int8 weights are per-channel, per-tensor on depthwise convolutions (9
weights per channel share one scale well; on the demo model 5.1 KB smaller at the same agreement). Full int8
(``static_wi8_ai8``) keeps every op of the normalisation modules (GroupNorm
and LayerNorm: MEAN, SUB, MUL, ADD, RSQRT) and of baked preprocessing in float; all-int8 lost 0.5
points of agreement (shared/notes/int8-tflite-trial.md). Selecting these by module scope rather than
by op kind lets the GHPA attention multiplies and the bridge additions go int8: on a 12-epoch model at
256 x 256 that gave 99.69% agreement (op-kind selection: 99.71%) in 239 KB instead of 285 KB. Each file is checked for
Flex/custom ops, trimmed (no signature/debug metadata, the contract added) and compacted (``tflite_compact``:
shared vectors and tables, names only on the I/O, SLICE runs as SPLIT; every output bit-identical).
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egeunet.atomic import write_bytes_atomic
from egeunet.errors import EGEUNetError
from egeunet.export import tflite_flatbuffer as fb
from egeunet.export.base import BUDGET_KEY, Exporter, contract, contract_json, deploy_key, register
from egeunet.export.recipes import Recipe, budget_note, deploy_float_regions, float_recipe, region_pattern
from egeunet.export.spec import ExportSpec, FormatConfig
from egeunet.export.tflite_compact import compact
from egeunet.quiet import held
from egeunet.runtime.tflite_file import tensor_type_names

CONFIG = FormatConfig(name="tflite", precisions=("fp32", "fp16", "int8"), float_form="for_litert")


@held("litert-torch")
def _convert_fp32(deploy, path: str) -> None:
    """litert-torch's conversion, its import lines and "[START]/[DONE]" progress held back (``egeunet.quiet``)."""
    import litert_torch

    litert_torch.convert(deploy, (deploy.example_input(),)).export(path)


def _signature(fp32_path: str) -> tuple[str, str]:
    """(signature key, its first input's name) of a converted model, read from the file instead of assumed."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=fp32_path).get_signature_list()
    key = next(iter(signatures))
    return key, signatures[key]["inputs"][0]


def float_region_problems(buf: bytes, recipe: Recipe, deploy) -> list[str]:
    """Where a quantized (untrimmed) flatbuffer disagrees with its recipe's float regions: an op inside a region that
    computes in integers, or a region of the deploy form that no op carries (renamed or fused by a rewrite)."""
    import re

    model = fb.load(buf)
    schema_types = tensor_type_names()
    present = {f"{type(m).__module__}.{type(m).__qualname__}" for m in deploy.modules()}
    patterns = {region: re.compile(region_pattern(region)) for region in recipe.float_regions if region in present}
    seen: set[str] = set()
    problems = []
    names = fb.op_names(model)
    graph = model.subgraphs[0]
    for name, op in zip(names, graph.operators or []):
        tensor = graph.tensors[op.outputs[0]]
        inside = [r for r, p in patterns.items() if p.match((tensor.name or b"").decode(errors="replace"))]
        seen.update(inside)
        if inside and name not in ("QUANTIZE", "DEQUANTIZE") and schema_types[tensor.type] in ("INT8", "INT16", "UINT8"):
            problems.append(f"{name} in float region {inside[0].rsplit('.', 1)[-1]} computes in "
                            f"{schema_types[tensor.type].lower()}")
    problems += [f"float region {r.rsplit('.', 1)[-1]} matches no op of the converted graph (renamed or fused?)"
                 for r in sorted(set(patterns) - seen)]
    return problems


NO_QUANTIZE = "no_quantize"


CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def _rules(recipe: Recipe, spec: ExportSpec, float_layers: Sequence[str] = (), only: str | None = None) -> list[dict]:
    """The recipe as ai-edge-quantizer rules (later rules win): static int8 everywhere, or only on layer ``only``,
    then the recipe's float regions, the extra ``float_layers`` and float I/O as NO_QUANTIZE rules."""
    from ai_edge_quantizer import recipe as recipes

    static = recipes.static_wi8_ai8()
    depthwise = copy.deepcopy(static[0])  # one scale per depthwise kernel: 9 weights per channel share it well
    depthwise["operation"] = "DEPTHWISE_CONV_2D"
    depthwise["op_config"]["weight_tensor_config"]["granularity"] = "TENSORWISE"
    static = static + [depthwise]
    rules = static if only is None else [{"regex": ".*", "operation": "*", "algorithm_key": NO_QUANTIZE},
                                         *({**rule, "regex": _layer_regex(only)} for rule in static)]
    rules += [{"regex": region_pattern(r), "operation": "*", "algorithm_key": NO_QUANTIZE} for r in recipe.float_regions]
    rules += [{"regex": _layer_regex(layer), "operation": "*", "algorithm_key": NO_QUANTIZE} for layer in float_layers]
    float_io = ["INPUT", "OUTPUT"] if recipe.io == "float32" else (["INPUT"] if spec.bake_preprocess else [])
    return rules + [{"regex": ".*", "operation": name, "algorithm_key": NO_QUANTIZE} for name in float_io]


def _layer_regex(layer: str) -> str:
    """Regex of one layer's tensors: its converter scope, then the ";N" litert-torch appends."""
    import re

    return re.escape(layer) + ";.*"


def conv_layers(buf: bytes) -> list[str]:
    """Converter scopes of the convolution layers of an (untrimmed) flatbuffer, in graph order."""
    model = fb.load(buf)
    graph = model.subgraphs[0]
    scopes = [(graph.tensors[op.outputs[0]].name or b"").decode().split(";")[0]
              for name, op in zip(fb.op_names(model), graph.operators or []) if name in CONV_OPS]
    return list(dict.fromkeys(s for s in scopes if s))


def _running_min_max(q, data: dict) -> dict:
    """Calibration ranges as the min and max over all images, not ai-edge-quantizer's moving average: the integer-only
    graph quantizes the norms' per-group means, variances and rsqrts, a few values per image, and a moving average
    of their extremes clipped a whole group on a quarter to a half of held-out images (measured on an 8-epoch model:
    98.4% mask agreement with the moving average, 99.0% with the running min/max, scripts/qat_fidelity.py).

    Through the public API: ``Quantizer.calibrate`` on each image alone gives that image's ranges (the first image
    of a calibration is taken as it is), merged here as the min of the mins and the max of the maxes."""
    (key, samples), = data.items()
    ranges: dict = {}
    for sample in samples:
        for name, qsv in q.calibrate({key: [sample]}).items():
            seen = ranges.get(name)
            ranges[name] = qsv if not seen else {"min": np.minimum(seen["min"], qsv["min"]),
                                                 "max": np.maximum(seen["max"], qsv["max"])}
    return ranges


class StaticQuantizer:
    """Full-int8 quantization of one fp32 flatbuffer by a recipe: calibrated once, then built with any layer set."""

    def __init__(self, fp32_path: str, recipe: Recipe, spec: ExportSpec) -> None:
        from egeunet.runtime.contract import ArtifactIO

        self.fp32_path, self.recipe, self.spec = fp32_path, recipe, spec
        self.inputs = ArtifactIO(spec.size, spec.layout, spec.bake_preprocess, "uint8").images_input(
            spec.calibration.images)
        key, name = _signature(fp32_path)
        data = {key: [{name: x[None]} for x in self.inputs]}
        with held("ai-edge-quantizer"):
            q = self._quantizer(_rules(recipe, spec))
            self.calibration = (_running_min_max(q, data) if recipe.ranges == "running-min-max"
                                else q.calibrate(data))

    def _quantizer(self, rules: list[dict]):
        from ai_edge_quantizer import quantizer

        q = quantizer.Quantizer(self.fp32_path)
        q.load_quantization_recipe(rules)
        return q

    def build(self, float_layers: Sequence[str] = (), only: str | None = None) -> bytes:
        """The quantized flatbuffer with ``float_layers`` kept float (or only layer ``only`` in int8)."""
        rules = _rules(self.recipe, self.spec, float_layers, only)
        with held("ai-edge-quantizer"):
            result = self._quantizer(rules).quantize(self.calibration, enable_progress_bar=False,
                                                     enable_progress_report=False)
        return bytes(result.quantized_model)

    def probabilities(self, buf: bytes) -> np.ndarray:
        """Probabilities N x S x S of a flatbuffer on the calibration images, run as the LiteRT runner runs artifacts."""
        from egeunet.runtime.runners.litert_runner import LiteRTRunner

        runner = LiteRTRunner(Path(self.fp32_path), content=buf, contract=contract(self.spec, CONFIG, self.recipe))
        return runner.io.output(runner.run_raw(runner.io.images_input(self.spec.calibration.images)))[:, 0]

    def within_budget(self) -> tuple[bytes, dict]:
        """``sensitivity.budget_search`` over the convolution layers: (flatbuffer, manifest record)."""
        from egeunet.accuracy import compare
        from egeunet.export.sensitivity import budget_search

        fp32 = Path(self.fp32_path).read_bytes()
        reference = self.probabilities(fp32)
        layers = conv_layers(fp32)
        short = {layer: "/".join(part.rsplit(".", 1)[-1] for part in layer.split("/")[1:]) or layer for layer in layers}
        buf, record = budget_search(layers, self.spec.int8_drift_budget, len(self.inputs),
                                    lambda b: compare(self.probabilities(b), reference),
                                    lambda layer: self.build(only=layer), lambda kept: self.build(float_layers=kept))
        record["kept_float"] = [short[layer] for layer in record["kept_float"]]
        if isinstance(record["most_sensitive"], list):
            record["most_sensitive"] = [{**row, "layer": short[row["layer"]]} for row in record["most_sensitive"]]
        return buf, record


def integer_only_problems(buf: bytes) -> list[str]:
    """Why a flatbuffer is not integer-only: a float tensor on any op other than the input QUANTIZE and the output
    DEQUANTIZE (inner QUANTIZE ops that rescale int8 to int8 are integer). Empty: an NPU can run every op."""
    model = fb.load(buf)
    graph = model.subgraphs[0]
    types = tensor_type_names()
    problems = []
    for name, op in zip(fb.op_names(model), graph.operators or []):
        if name == "QUANTIZE" and all(i in graph.inputs for i in op.inputs):
            continue
        if name == "DEQUANTIZE" and all(o in graph.outputs for o in op.outputs):
            continue
        floats = sorted({types[graph.tensors[t].type] for t in [*op.inputs, *op.outputs]
                         if t >= 0 and not types[graph.tensors[t].type].startswith(("INT", "UINT", "BOOL"))})
        if floats:
            problems.append(f"{name} on {', '.join(floats)}")
    return problems


def _quantize(fp32_path: str, out: str, recipe: Recipe, spec: ExportSpec) -> dict | None:
    """Configure ai-edge-quantizer from the recipe's fields; returns the drift-budget record when one was searched."""
    from ai_edge_quantizer import qtyping, quantizer, recipe as recipes
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    q = quantizer.Quantizer(fp32_path)
    if recipe.weights == "float16":
        for op in (qtyping.TFLOperationName.CONV_2D, qtyping.TFLOperationName.DEPTHWISE_CONV_2D):
            q.add_weight_only_config(regex=".*", operation_name=op, num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
    elif not recipe.static:
        q.load_quantization_recipe(recipes.dynamic_wi8_afp32())
    else:
        static = StaticQuantizer(fp32_path, recipe, spec)
        buf, record = static.within_budget() if spec.int8_drift_budget is not None else (static.build(), None)
        Path(out).write_bytes(buf)
        return record
    with held("ai-edge-quantizer"):
        q.quantize(enable_progress_bar=False, enable_progress_report=False).export_model(out, overwrite=True)
    return None


@register
class TFLiteExporter(Exporter):
    """TFLite exporter; caches the fp32 conversion of each deploy form (by content) so its recipes share it."""

    config = CONFIG

    def __init__(self) -> None:
        self._fp32: dict[str, bytes] = {}  # deploy_key -> its fp32 flatbuffer, shared by every recipe of this run

    def recipes(self, precision: str, spec: ExportSpec, int8_io: bool = False) -> list[Recipe]:
        if precision in ("fp32", "fp16"):
            return [float_recipe(precision, "litert-torch conversion of the deploy form" if precision == "fp32"
                                 else "fp32 conversion with float16 weights (float compute)",
                                 float16_weights=".*")]  # every convolution of the float graph (tests/test_export.py)
        dynamic = Recipe("int8-dynamic", "int8", weights="int8", method="dynamic-range int8: int8 weights, float compute")
        io = "int8" if int8_io else "float32"
        what = "int8 output" + ("" if spec.bake_preprocess else " and input") if int8_io else "float I/O"
        full = Recipe("int8-io" if int8_io else "int8", "int8", weights="int8", activations="int8", io=io,
                      float_regions=deploy_float_regions(), scales="calibration",
                      method=f"full int8: int8 convolutions (per-channel weights, per-tensor on depthwise) and "
                             f"activations, norm ops float, {what}" + budget_note(spec))
        integer = Recipe("int8-integer", "int8", weights="int8", activations="int8", io=io, scales="calibration",
                         ranges="running-min-max", optional=True,
                         method=f"integer-only int8 for NPUs: every op in int8, the norms included, "
                         f"{what}; needs quantization-aware fine-tuning (egeunet finetune-int8) to pass its gate")
        return [dynamic, full, integer]

    def _fp32_bytes(self, deploy) -> bytes:
        key = deploy_key(deploy)
        if key not in self._fp32:
            with tempfile.TemporaryDirectory() as work:
                path = os.path.join(work, "fp32.tflite")
                _convert_fp32(deploy, path)
                self._fp32[key] = Path(path).read_bytes()
        return self._fp32[key]

    def export(self, deploy, spec: ExportSpec, out_path: Path, recipe: Recipe) -> Path:
        from egeunet.model.deploy import for_litert

        deploy = for_litert(deploy, float_graph=recipe.weights in ("float32", "float16"))  # see for_litert
        buf, budget = self._fp32_bytes(deploy), None
        if recipe.weights != "float32":
            with tempfile.TemporaryDirectory() as work:
                fp32, out = os.path.join(work, "fp32.tflite"), os.path.join(work, "q.tflite")
                Path(fp32).write_bytes(buf)
                budget = _quantize(fp32, out, recipe, spec)
                buf = Path(out).read_bytes()
            problems = float_region_problems(buf, recipe, deploy) if recipe.float_regions else []
            if problems:
                raise EGEUNetError(f"{out_path.name}: the artifact does not keep its recipe's float regions: "
                                   f"{'; '.join(problems[:3])}")
            problems = integer_only_problems(buf) if recipe.integer_only else []
            if problems:
                raise EGEUNetError(f"{out_path.name}: not integer-only ({len(problems)} ops): {'; '.join(problems[:3])}")
        fb.reject_unsupported_ops(fb.op_names(fb.load(buf)), str(out_path))
        extra = {BUDGET_KEY: json.dumps(budget, separators=(",", ":"))} if budget else None
        trimmed = fb.trim(buf, contract_json(spec, CONFIG, recipe), CONFIG.input_name, CONFIG.output_name, extra)
        write_bytes_atomic(out_path, compact(trimmed))
        return Path(out_path)

    def describe(self, path: Path) -> dict:
        from ai_edge_litert.interpreter import Interpreter

        from egeunet.runtime.runners.litert_runner import per_tensor_grid
        from egeunet.runtime.tflite_file import read_metadata

        buf = Path(path).read_bytes()
        interpreter = Interpreter(model_content=buf)

        def io(details) -> list[dict]:
            return [{"name": d["name"], "dtype": d["dtype"].__name__, "shape": d["shape"].tolist(),
                     **({} if (grid := per_tensor_grid(d)) is None else {"scale": grid[0], "zero_point": grid[1]})}
                    for d in details]

        breakdown = fb.size_breakdown(buf)
        return {"inputs": io(interpreter.get_input_details()), "outputs": io(interpreter.get_output_details()),
                "ops": breakdown["ops"], "op_counts": breakdown["op_counts"], "size_breakdown": breakdown,
                "quantization": fb.quantization_summary(fb.load(buf)), "contract": read_metadata(buf),
                "int8_drift_budget": read_metadata(buf, BUDGET_KEY),
                "integer_only": not integer_only_problems(buf)}

