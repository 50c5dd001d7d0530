"""Which layers cause int8 drift, and which to keep in float so an int8 artifact stays within a drift budget.

``rank_layers`` quantizes one layer at a time and measures how far the output moves from the fp32
reference; ``keep_float_until`` keeps the k most sensitive layers in float, k = 0, 1, 2, ..., until the
budget holds. Both take callables: the ONNX exporter's ``--int8-drift-budget`` runs them on its calibration
images; TFLite (ai-edge-quantizer NO_QUANTIZE overrides) is not wired up yet. ``onnx_sensitivity``
(``sensitivity_for``) applies the ranking to every int8 ONNX artifact of a benchmark, re-quantizing its
fp32 sibling.
"""
from __future__ import annotations

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


def keep_float_until(ranked: Sequence[str] | Callable[[], Sequence[str]],
                     quantize_excluding: Callable[[list[str]], object], evaluate: Callable[[object], dict],
                     within_budget: Callable[[dict], bool], max_float: int | None = None) -> dict:
    """Smallest k such that keeping ``ranked[:k]`` in float meets the budget; returns the choice and every trial.

    ``{"float_layers": [...], "result": {...}, "met": bool, "trials": [{"k", **result}], "artifact": ...}``; when no
    k up to ``max_float`` (default all) meets it, the last trial is returned with ``met`` False. ``ranked`` may be a
    function returning the ranking, then called only when quantizing every layer misses the budget.
    """
    order = None if callable(ranked) else ranked
    trials, k = [], 0
    while True:
        kept = list(order[:k]) if k else []
        artifact = quantize_excluding(kept)
        result = evaluate(artifact)
        trials.append({"k": k, **result})
        met = within_budget(result)
        if not met and order is None:
            order = ranked()
        if met or k >= (len(order) if max_float is None else min(max_float, len(order))):
            return {"float_layers": kept, "result": result, "met": met, "trials": trials, "artifact": artifact}
        k += 1


def quantized_op_types(int8_path: str | Path) -> set[str]:
    """Op types of the weight layers (Conv, MatMul, Gemm) a QDQ model runs on dequantized int8 tensors."""
    import onnx

    graph = onnx.load(str(int8_path), load_external_data=False).graph
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.op_type for n in graph.node if n.op_type in WEIGHT_OPS and any(i in dq_outputs for i in n.input)}


def name_layers(fp32_path: str | Path, out: str | Path, op_types: set[str]) -> list[dict]:
    """Copy an fp32 ONNX with every node named (exports keep only Conv names); returns its layers of ``op_types``.

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


def graph_inputs(fp32_path: str | Path, canonical: np.ndarray) -> np.ndarray:
    """Canonical inputs N x 3 x S x S as an ONNX artifact takes them (its contract: layout, baked preprocessing)."""
    import onnx

    from egeunet.export.base import CONTRACT_KEY
    from egeunet.export.io import ArtifactIO

    model = onnx.load(str(fp32_path), load_external_data=False)
    contract = {p.key: p.value for p in model.metadata_props}.get(CONTRACT_KEY)
    return ArtifactIO.from_contract(contract).canonical_input(canonical)


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
    """Rank the layers of the op types quantized in ``int8_path`` by quantizing each alone in ``fp32_path``
    (with the exporter's ``quantize``, calibrating once).

    Calibration uses the last images of the set and scoring the first ``EVAL_IMAGES`` (disjoint when the
    set holds at least 2 x EVAL_IMAGES images).
    """
    from egeunet.export.onnx_export import quantize

    n = min(EVAL_IMAGES, len(inputs))
    calibration = inputs[max(n, len(inputs) - 2 * EVAL_IMAGES):] if len(inputs) > n else inputs
    with tempfile.TemporaryDirectory(prefix="egeunet-sensitivity-") as tmp:
        named = Path(tmp) / "named.onnx"
        ops = quantized_op_types(int8_path)
        layers = name_layers(fp32_path, named, ops)
        base = {"artifact": name, "source": fp32_path.name, "layers": len(layers)}
        if not layers:
            return {**base, "note": "the int8 file has no quantized Conv/MatMul/Gemm layer"}
        weights = {layer["layer"]: layer["weights"] for layer in layers}
        position = {layer["layer"]: i for i, layer in enumerate(layers)}
        calibration = graph_inputs(fp32_path, calibration)
        evaluate = onnx_evaluator(inputs[:n], reference[:n])

        def quantize_only(layer: str) -> Path:
            out = Path(tmp) / f"only-{position[layer]}.onnx"
            return quantize(named, out, calibration, ops=sorted(ops), nodes_to_quantize=[layer],
                            cache=Path(tmp) / "calibration.json")

        ranked = rank_layers([layer["layer"] for layer in layers[:MAX_LAYERS]], quantize_only, evaluate)
    for row in ranked:
        row["weights"] = weights[row["layer"]]
    note = f"first {MAX_LAYERS} of {len(layers)} layers" if len(layers) > MAX_LAYERS else ""
    return {**base, "images": n, "calibration_images": len(calibration), "ranking": ranked, "note": note}
