"""Which layers cause int8 drift, and which to keep in float so an int8 artifact stays within a drift budget.

``rank_layers`` quantizes one layer at a time and measures how far the output moves from the fp32
reference; ``keep_float_until`` keeps the k most sensitive layers in float, k = 0, 1, 2, ..., until the
budget holds. Both take callables, so one search serves ONNX (ORT QDQ, here) and TFLite
(ai-edge-quantizer recipes with NO_QUANTIZE overrides, in the exporter). ``onnx_sensitivity``
(``sensitivity_for``) applies the ranking to every int8 ONNX artifact of a benchmark, re-quantizing its
fp32 sibling.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

EVAL_IMAGES = 8
MAX_LAYERS = 128
WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _by_drift(row: dict) -> tuple[float, float]:
    """Lowest agreement first, then largest mean |Δprob| (the keys ``drift`` returns)."""
    return row["agreement"], -row["mean_abs_dprob"]


def rank_layers(layers: Sequence[str], quantize_only: Callable[[str], object], evaluate: Callable[[object], dict],
                sort_key: Callable[[dict], object] = _by_drift) -> list[dict]:
    """Quantize each layer alone and evaluate it; rows ``{"layer", **evaluate(...)}``, most sensitive first.

    ``sort_key`` orders rows (default: agreement, then mean |Δprob|); pass another for other result keys.
    """
    rows = []
    for layer in tqdm(layers, desc="per-layer sensitivity", unit="layer", leave=False):
        rows.append({"layer": layer, **evaluate(quantize_only(layer))})
    return sorted(rows, key=sort_key)


def keep_float_until(ranked: Sequence[str], quantize_excluding: Callable[[list[str]], object],
                     evaluate: Callable[[object], dict], within_budget: Callable[[dict], bool],
                     max_float: int | None = None) -> dict:
    """Smallest k such that keeping ``ranked[:k]`` in float meets the budget; returns the choice and every trial.

    ``{"float_layers": [...], "result": {...}, "met": bool, "trials": [{"k", **result}]}``; when no k up to
    ``max_float`` (default all) meets it, the last trial is returned with ``met`` False.
    """
    trials, artifact = [], None
    limit = len(ranked) if max_float is None else min(max_float, len(ranked))
    for k in range(limit + 1):
        artifact = quantize_excluding(list(ranked[:k]))
        result = evaluate(artifact)
        trials.append({"k": k, **result})
        if within_budget(result):
            return {"float_layers": list(ranked[:k]), "result": result, "met": True, "trials": trials,
                    "artifact": artifact}
    return {"float_layers": list(ranked[:limit]), "result": trials[-1], "met": False, "trials": trials,
            "artifact": artifact}


def quantized_op_types(int8_path: str | Path) -> set[str]:
    """Op types of the weight layers (Conv, MatMul, Gemm) a QDQ model runs on dequantized int8 tensors."""
    import onnx

    graph = onnx.load(str(int8_path), load_external_data=False).graph
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.op_type for n in graph.node if n.op_type in WEIGHT_OPS and any(i in dq_outputs for i in n.input)}


def name_layers(fp32_path: str | Path, out: str | Path, op_types: set[str]) -> list[dict]:
    """Copy an fp32 ONNX with every node named (exports drop names); returns its layers of ``op_types``.

    A layer is ``{"layer": node name, "weights": "OxIxKxK"}`` ("computed" when the weight is not a
    stored tensor, e.g. folded in the graph); unnamed nodes become ``<op>_<index>``.
    """
    import onnx

    model = onnx.load(str(fp32_path))
    shapes = {init.name: "x".join(map(str, init.dims)) for init in model.graph.initializer}
    layers = []
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{i}"
        if node.op_type in op_types:
            layers.append({"layer": node.name, "weights": shapes.get(node.input[1], "computed")})
    onnx.save(model, str(out))
    return layers


class OnnxQuantizer:
    """ORT static QDQ quantization of one fp32 ONNX, calibrated once (cached ranges), per-channel int8 weights.

    ``calibration``: canonical inputs N x 3 x S x S, fed as the artifact's contract says (layout, baked).
    """

    def __init__(self, fp32_path: str | Path, calibration: np.ndarray, workdir: str | Path) -> None:
        import onnx

        from egeunet.export.base import CONTRACT_KEY
        from egeunet.export.io import ArtifactIO

        model = onnx.load(str(fp32_path), load_external_data=False)
        contract = {p.key: p.value for p in model.metadata_props}.get(CONTRACT_KEY)
        self.fp32_path = Path(fp32_path)
        self.input_name = model.graph.input[0].name
        self.calibration = ArtifactIO.from_contract(contract).canonical_input(calibration)
        self.workdir = Path(workdir)
        self.cache = self.workdir / "calibration.json"
        self.count = 0

    def quantize(self, nodes_to_quantize: list[str] | None = None, nodes_to_exclude: list[str] | None = None) -> Path:
        """Write a QDQ model quantizing only ``nodes_to_quantize`` (None: all) minus ``nodes_to_exclude``."""
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        batches = iter([{self.input_name: x[None]} for x in self.calibration])

        class Reader(CalibrationDataReader):
            def get_next(self):
                return next(batches, None)

        self.count += 1
        out = self.workdir / f"q{self.count}.onnx"
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # ORT logs one warning per bias on the root logger
        try:
            quantize_static(str(self.fp32_path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            nodes_to_quantize=nodes_to_quantize, nodes_to_exclude=nodes_to_exclude,
                            calibration_cache_path=str(self.cache))
        finally:
            root.setLevel(level)
        return out


def onnx_evaluator(inputs: np.ndarray, reference: np.ndarray) -> Callable[[Path], dict]:
    """A function scoring an ONNX file by agreement and |Δprob| against the reference probabilities."""
    from egeunet.benchmark.drift import drift
    from egeunet.benchmark.harness import predict_all
    from egeunet.benchmark.runners import open_runner

    def evaluate(path: Path) -> dict:
        result = drift(reference, predict_all(open_runner(path, "onnxruntime"), inputs))
        result.pop("per_image_agreement")
        return result

    return evaluate


def sensitivity_for(targets: list, evalset, reference_probs: np.ndarray) -> list[dict]:
    """One report per int8 target: a per-layer ranking for ONNX (re-quantizing its fp32 sibling), a note otherwise."""
    fp32 = [t for t in targets if t.runtime == "onnxruntime" and t.precision == "fp32" and not t.problem]
    reports = []
    for target in targets:
        if target.precision != "int8" or target.problem:
            continue
        if target.runtime != "onnxruntime":
            reports.append({"artifact": target.name, "note": "not ranked: the per-layer ranking re-quantizes ONNX QDQ "
                            "only; other formats plug their quantizer into rank_layers / keep_float_until"})
            continue
        if not fp32:
            reports.append({"artifact": target.name, "note": "no fp32 ONNX artifact to re-quantize"})
            continue
        reports.append(onnx_sensitivity(fp32[0].path, target.path, evalset.inputs, reference_probs, target.name))
    return reports


def onnx_sensitivity(fp32_path: Path, int8_path: Path, inputs: np.ndarray, reference: np.ndarray,
                     name: str) -> dict:
    """Rank the layers of the op types quantized in ``int8_path`` by quantizing each alone in ``fp32_path``.

    Calibration uses the last images of the set and scoring the first ``EVAL_IMAGES`` (disjoint when the
    set holds at least 2 x EVAL_IMAGES images).
    """
    n = min(EVAL_IMAGES, len(inputs))
    calibration = inputs[max(n, len(inputs) - 2 * EVAL_IMAGES):] if len(inputs) > n else inputs
    with tempfile.TemporaryDirectory(prefix="egeunet-sensitivity-") as tmp:
        named = Path(tmp) / "named.onnx"
        layers = name_layers(fp32_path, named, quantized_op_types(int8_path))
        base = {"artifact": name, "source": fp32_path.name, "layers": len(layers)}
        if not layers:
            return {**base, "note": "the int8 file has no quantized Conv/MatMul/Gemm layer"}
        weights = {layer["layer"]: layer["weights"] for layer in layers}
        quantizer = OnnxQuantizer(named, calibration, tmp)
        evaluate = onnx_evaluator(inputs[:n], reference[:n])
        ranked = rank_layers([layer["layer"] for layer in layers[:MAX_LAYERS]],
                             lambda layer: quantizer.quantize([layer]), evaluate)
    for row in ranked:
        row["weights"] = weights[row["layer"]]
    note = f"first {MAX_LAYERS} of {len(layers)} layers" if len(layers) > MAX_LAYERS else ""
    return {**base, "images": n, "calibration_images": len(calibration), "ranking": ranked, "note": note}
