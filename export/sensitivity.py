"""Which layers cause int8 drift, and which to keep in float so an int8 artifact stays within a drift budget.

``rank_layers`` quantizes one layer at a time and measures how far the output moves from the fp32 reference (an
``egeunet.accuracy.Comparison``, most drift first by its one ``sort_key``); ``keep_float_until`` keeps the k most
sensitive layers in float, k = 0, 1, 2, ..., until the budget holds. Both take callables: the ONNX exporter's
``--int8-drift-budget`` runs them (``budget_search``) on its calibration images, for ONNX QDQ and full-int8 TFLite
(ai-edge-quantizer NO_QUANTIZE rules per layer). ``sensitivity_for`` ranks the layers of every int8 ONNX artifact of a benchmark by re-quantizing its
fp32 sibling (``egeunet benchmark`` composes it with the benchmark's results).
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from egeunet.progress import progress

if TYPE_CHECKING:
    from egeunet.accuracy import Comparison

EVAL_IMAGES = 8
MAX_LAYERS = 128
RANKING_ROWS = 10  # most sensitive layers recorded with a drift-budget choice
WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def rank_layers(layers: Sequence[str], quantize_only: Callable[[str], object],
                evaluate: Callable[[object], "Comparison"]) -> list[dict]:
    """Quantize each layer alone and evaluate it; rows ``{"layer", "result": Comparison}``, most drift first."""
    rows = [{"layer": layer, "result": evaluate(quantize_only(layer))}
            for layer in progress(layers, desc="per-layer sensitivity", unit="layer", leave=False)]
    return sorted(rows, key=lambda row: row["result"].sort_key())


def keep_float_until(ranked: Sequence[str] | Callable[[], Sequence[str]],
                     quantize_excluding: Callable[[list[str]], object], evaluate: Callable[[object], "Comparison"],
                     within_budget: Callable[["Comparison"], bool], max_float: int | None = None) -> dict:
    """Smallest k such that keeping ``ranked[:k]`` in float meets the budget; returns the choice and every trial.

    ``{"float_layers": [...], "result": Comparison, "met": bool, "trials": [{"k", "result"}], "artifact": ...}``; when
    no k up to ``max_float`` (default all) meets it, the last trial is returned with ``met`` False. ``ranked`` may be
    a function returning the ranking, then called only when quantizing every layer misses the budget.
    """
    order = None if callable(ranked) else ranked
    trials, k = [], 0
    while True:
        kept = list(order[:k]) if k else []
        artifact = quantize_excluding(kept)
        result = evaluate(artifact)
        trials.append({"k": k, "result": result})
        met = within_budget(result)
        if not met and order is None:
            order = ranked()
        if met or k >= (len(order) if max_float is None else min(max_float, len(order))):
            return {"float_layers": kept, "result": result, "met": met, "trials": trials, "artifact": artifact}
        k += 1


def budget_search(layers: Sequence[str], budget: float, images: int, evaluate: Callable[[object], "Comparison"],
                  quantize_only: Callable[[str], object],
                  quantize_excluding: Callable[[list[str]], object]) -> tuple[object, dict]:
    """Keep the most int8-sensitive ``layers`` in float until mask agreement with the float graph reaches ``budget``.

    Full int8 first; only if it misses are the layers ranked (each quantized alone). Returns the chosen artifact and
    the manifest record (budget, kept-float layers, whether it was met, every trial, the most sensitive layers).
    """
    from egeunet.accuracy import Gate

    gate = Gate(min_agreement=budget)
    ranked: list[dict] = []

    def ranking() -> list[str]:
        ranked.extend(rank_layers(layers, quantize_only, evaluate))
        return [r["layer"] for r in ranked]

    choice = keep_float_until(ranking, quantize_excluding, evaluate, lambda result: gate.check(result).passed)
    record = {"budget": budget, "measure": "mask agreement with the float graph on the calibration images",
              "images": images, "kept_float": choice["float_layers"], "met": choice["met"],
              "agreement": choice["result"].agreement,
              "trials": [{"k": t["k"], "agreement": round(t["result"].agreement, 6)} for t in choice["trials"]],
              "most_sensitive": [{"layer": r["layer"], "agreement": round(r["result"].agreement, 6)}
                                 for r in ranked[:RANKING_ROWS]] or "not ranked: every layer in int8 meets the budget"}
    return choice["artifact"], record


def quantized_op_types(int8_path: str | Path) -> set[str]:
    """Op types of the weight layers (Conv, MatMul, Gemm) a QDQ model runs on dequantized int8 tensors."""
    import onnx

    graph = onnx.load(str(int8_path), load_external_data=False).graph
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.op_type for n in graph.node if n.op_type in WEIGHT_OPS and any(i in dq_outputs for i in n.input)}


def named_copy(fp32_path: Path, out: Path, op_types: set[str]) -> list[dict]:
    """Copy an fp32 ONNX with its ``op_types`` layers named (``onnx_export.name_layers``); their names and weights."""
    import onnx

    from egeunet.export.onnx_export import name_layers

    model = onnx.load(str(fp32_path))
    names = name_layers(model, sorted(op_types))
    shapes = {init.name: "x".join(map(str, init.dims)) for init in model.graph.initializer}
    weights = {n.name: shapes.get(n.input[1], "computed") for n in model.graph.node if n.name in set(names)}
    onnx.save(model, str(out))
    return [{"layer": name, "weights": weights[name]} for name in names]


def _graph_inputs(fp32_path: Path, canonical: np.ndarray) -> np.ndarray:
    """Canonical inputs N x 3 x S x S as an ONNX artifact takes them (its contract: layout, baked preprocessing)."""
    from egeunet.runtime.runners import open_runner

    return open_runner(fp32_path, "onnxruntime").io.canonical_input(canonical)


def onnx_evaluator(inputs: np.ndarray, reference: np.ndarray) -> Callable[[Path], "Comparison"]:
    """A function comparing an ONNX file's probabilities on ``inputs`` with the reference probabilities."""
    from egeunet.accuracy import compare
    from egeunet.runtime.runners import open_runner

    def evaluate(path: Path):
        return compare(open_runner(path, "onnxruntime").probabilities(inputs), reference)

    return evaluate


def _row(ranked: dict, weights: str) -> dict:
    c = ranked["result"]
    return {"layer": ranked["layer"], "weights": weights, "agreement": c.agreement,
            "mean_abs_dprob": c.mean_abs_dprob, "max_abs_dprob": c.max_abs_dprob}


def sensitivity_for(targets: list, inputs: np.ndarray, reference_probs: np.ndarray) -> list[dict]:
    """One report per int8 target (``egeunet.runtime.Target``): a per-layer ranking for ONNX, a note otherwise."""
    fp32 = [t for t in targets if t.runtime == "onnxruntime" and t.artifact.precision == "fp32" and not t.problem]
    reports = []
    for target in targets:
        if target.artifact.precision != "int8" or target.problem:
            continue
        if target.runtime != "onnxruntime":
            reports.append({"artifact": target.name, "note": "not ranked: the per-layer ranking re-quantizes ONNX QDQ "
                            "only; other formats plug their quantizer into rank_layers / keep_float_until"})
            continue
        if not fp32:
            reports.append({"artifact": target.name, "note": "no fp32 ONNX artifact to re-quantize"})
            continue
        reports.append(onnx_sensitivity(fp32[0].artifact.path, target.artifact.path, inputs, reference_probs,
                                        target.name))
    return reports


def onnx_sensitivity(fp32_path: Path, int8_path: Path, inputs: np.ndarray, reference: np.ndarray, name: str) -> dict:
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
        layers = named_copy(Path(fp32_path), named, ops)
        base = {"artifact": name, "source": Path(fp32_path).name, "layers": len(layers)}
        if not layers:
            return {**base, "note": "the int8 file has no quantized Conv/MatMul/Gemm layer"}
        weights = {layer["layer"]: layer["weights"] for layer in layers}
        position = {layer["layer"]: i for i, layer in enumerate(layers)}
        calibration = _graph_inputs(Path(fp32_path), calibration)
        evaluate = onnx_evaluator(inputs[:n], reference[:n])

        def quantize_only(layer: str) -> Path:
            out = Path(tmp) / f"only-{position[layer]}.onnx"
            return quantize(named, out, calibration, ops=sorted(ops), nodes_to_quantize=[layer],
                            cache=Path(tmp) / "calibration.json")

        ranked = rank_layers([layer["layer"] for layer in layers[:MAX_LAYERS]], quantize_only, evaluate)
    note = f"first {MAX_LAYERS} of {len(layers)} layers" if len(layers) > MAX_LAYERS else ""
    return {**base, "images": n, "calibration_images": len(calibration),
            "ranking": [_row(r, weights[r["layer"]]) for r in ranked], "note": note}
