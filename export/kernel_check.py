"""Judge an int8 artifact on every kernel set of its runtime, and name the first op whose kernels disagree.

``judge_on_kernel_sets`` runs the artifact on each available set (``egeunet.runtime.kernel_sets``) and applies the
gate on each. When sets disagree (one passes and another fails, or their masks differ on more than
``KERNEL_AGREEMENT`` of the pixels), ``first_diverging_op`` runs each op of the graph alone, fed its real inputs (the
reference set's intermediate tensors on the image where the sets disagree most), on both sets, and names the first op
whose outputs differ beyond rounding. A named op is a kernel fault of that runtime on this CPU, not quantization
error: the artifact is judged on the reference set, and the faulty set's verdict is recorded beside it.
"""
from __future__ import annotations

import tempfile
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egeunet.runtime.kernel_sets import KernelSet, kernel_sets

KERNEL_AGREEMENT = 0.99  # correct kernel sets measured 99.66-99.99% mask agreement with each other on int8 files
OFF_STEPS = 1  # an int8 value more than this many steps from the reference kernel's is off
OFF_RELATIVE = 1e-3  # a float value off by more than this fraction of the output's largest magnitude is off
OFF_FRACTION = 1e-3  # an op diverges when more than this fraction of its output values is off


@dataclass(frozen=True)
class OpUnit:
    """One op of an artifact as a graph of its own: its position, type and name, bytes, and the keys of its inputs and
    outputs among the reference run's tensors (value names for ONNX, tensor indices for TFLite), in the graph's order."""

    index: int
    op: str
    name: str
    graph: bytes
    inputs: tuple
    outputs: tuple


def _onnx_values(buf: bytes, feed: np.ndarray, reference: KernelSet) -> dict[str, np.ndarray]:
    """Every value of an ONNX graph (all made graph outputs) after one run of the reference kernels on ``feed``."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(buf)
    outputs = [o.name for o in model.graph.output]
    values = sorted({o for n in model.graph.node for o in n.output if o} - set(outputs))
    model.graph.output.extend(helper.make_empty_tensor_value_info(v) for v in values)
    got = reference.run_graph(model.SerializeToString(), [feed])
    return {model.graph.input[0].name: feed, **dict(zip(outputs + values, got))}


def _onnx_units(buf: bytes, values: dict[str, np.ndarray]) -> list[OpUnit]:
    """Each non-Q/DQ node with the DequantizeLinear nodes feeding it and the QuantizeLinear nodes it feeds only
    (ONNX Runtime fuses such a group into one int8 kernel), as a graph whose inputs are its non-constant inputs."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(buf)
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def info(name: str):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(values[name].dtype),
                                             values[name].shape)

    units = []
    for index, node in enumerate(graph.node):
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
            continue
        before = [producer[i] for i in node.input if i in producer and producer[i].op_type == "DequantizeLinear"]
        after = [c for o in node.output for c in consumers[o]]
        after = after if after and all(c.op_type == "QuantizeLinear" for c in after) else []
        nodes = before + [node] + after
        produced = {o for n in nodes for o in n.output}
        needed = list(dict.fromkeys(i for n in nodes for i in n.input if i and i not in produced))
        inputs = [i for i in needed if i not in initializers]
        outputs = [q.output[0] for q in after] or [o for o in node.output if o]
        if any(name not in values for name in inputs + outputs):
            continue
        one = helper.make_model(helper.make_graph(nodes, "op", [info(i) for i in inputs], [info(o) for o in outputs],
                                                  [initializers[i] for i in needed if i in initializers]),
                                opset_imports=model.opset_import)
        one.ir_version = model.ir_version
        units.append(OpUnit(index, node.op_type, node.name or f"{node.op_type}_{index}", one.SerializeToString(),
                            tuple(inputs), tuple(outputs)))
    return units


def _tflite_units(buf: bytes) -> list[OpUnit]:
    """Each operator of the main subgraph as a one-op model whose inputs are its non-constant input tensors."""
    from egeunet.export import tflite_flatbuffer as fb

    model = fb.load(buf)
    names = fb.op_names(model)
    graph = model.subgraphs[0]
    constant = {i for i, t in enumerate(graph.tensors) if model.buffers[t.buffer].data is not None}
    units = []
    for index, (op, name) in enumerate(zip(graph.operators, names)):
        inputs = [i for i in op.inputs if i >= 0 and i not in constant]
        model.subgraphs[0].operators, graph.inputs, graph.outputs = [op], inputs, list(op.outputs)
        model.signatureDefs = []
        label = (graph.tensors[op.outputs[0]].name or b"").decode(errors="replace")
        units.append(OpUnit(index, name, label or f"{name}_{index}", fb.dump(model), tuple(inputs), tuple(op.outputs)))
    return units


def _tflite_tensors(buf: bytes, feed: np.ndarray) -> dict[int, np.ndarray]:
    """Every tensor of the main subgraph after one run of the reference kernels on ``feed``."""
    from egeunet.runtime.runners.litert_runner import interpreter

    with warnings.catch_warnings():  # LiteRT warns that keeping every tensor costs memory: that is the point here
        warnings.simplefilter("ignore")
        model = interpreter(buf, "reference", threads=1, keep_tensors=True)
    model.allocate_tensors()
    model.set_tensor(model.get_input_details()[0]["index"], feed)
    model.invoke()
    values = {}
    for detail in model.get_tensor_details():
        try:
            values[detail["index"]] = model.get_tensor(detail["index"]).copy()
        except ValueError:  # a tensor without data (e.g. an optional input)
            continue
    return values


def op_units(path: Path, feed: np.ndarray, reference: KernelSet) -> tuple[list[OpUnit], dict]:
    """Every op of an ONNX or TFLite artifact as a one-op graph, and every tensor of one reference run on ``feed``."""
    buf = path.read_bytes()
    if path.suffix == ".onnx":
        values = _onnx_values(buf, feed, reference)
        return _onnx_units(buf, values), values
    return _tflite_units(buf), _tflite_tensors(buf, feed)


def off_fraction(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(fraction of values off, largest difference: int8 steps, or a fraction of the largest magnitude for floats)."""
    if reference.shape != other.shape:
        return 1.0, float("inf")
    if np.issubdtype(reference.dtype, np.integer):
        diff = np.abs(reference.astype(np.int64) - other.astype(np.int64))
        return float(np.mean(diff > OFF_STEPS)) if diff.size else 0.0, float(diff.max(initial=0))
    scale = float(np.abs(reference).max(initial=0)) or 1.0
    diff = np.abs(reference.astype(np.float64) - other.astype(np.float64)) / scale
    return float(np.mean(diff > OFF_RELATIVE)) if diff.size else 0.0, float(diff.max(initial=0))


def first_diverging_op(path: Path, feed: np.ndarray, reference: KernelSet, other: KernelSet) -> dict:
    """Run each op of ``path`` alone on both kernel sets, fed the reference set's intermediate tensors for ``feed``
    (one input exactly as the artifact takes it); the first op whose outputs differ beyond rounding, and how many do."""
    units, values = op_units(Path(path), feed, reference)
    diverging = []
    for unit in units:
        feeds = [values[i] for i in unit.inputs]
        expected, got = reference.run_graph(unit.graph, feeds), other.run_graph(unit.graph, feeds)
        worst = max((off_fraction(e, g) for e, g in zip(expected, got)), key=lambda pair: pair[0])
        if worst[0] > OFF_FRACTION:
            diverging.append({"op": unit.op, "name": unit.name, "position": unit.index,
                              "values_off": round(worst[0], 6), "largest_difference": round(worst[1], 4)})
    record = {"ops_checked": len(units), "ops_diverging": len(diverging), "reference": reference.name,
              "compared": other.name}
    return {**record, "first": diverging[0], "others": diverging[1:6]} if diverging else record


def judge_on_kernel_sets(path: Path, runtime: str, reference_probs: np.ndarray, held, gate,
                         sets: tuple[KernelSet, ...] | None = None, per_op: bool = True) -> dict | None:
    """Gate an artifact on each available kernel set of ``runtime``; None when the runtime has fewer than two.

    Returns ``{"sets": {name: validation record}, "unavailable": {name: why}, "decided_on": name, "faults": [...],
    "passed": bool, "notes": [str]}``: the verdict is the reference set's, and every deployment set either passes or
    has a named diverging op (a kernel fault, recorded in ``faults``); a deployment set that fails without one fails
    the artifact (its quantization is too close to the gate for those kernels' rounding). ``per_op`` False (dynamic
    range: deployment kernels quantize activations at run time, the reference ones do not, by design): no op check.
    """
    from egeunet.export.base import validation_record

    sets = kernel_sets(runtime) if sets is None else sets
    if len(sets) < 2:
        return None
    reasons = {s.name: s.unavailable() for s in sets}  # loads the ARM kit's description once per set
    unavailable = {name: why for name, why in reasons.items() if why}
    usable = [s for s in sets if s.name not in unavailable]
    records, probs = {}, {}
    with tempfile.TemporaryDirectory(prefix="egeunet-kernels-") as work:
        for s in usable:
            probs[s.name] = s.probabilities(Path(path), held.images, Path(work))
            records[s.name] = validation_record(probs[s.name], reference_probs, held.masks, gate)
        reference = usable[0]
        faults, failed = [], []
        for s in usable[1:]:
            mutual = (probs[s.name] >= 0.5) == (probs[reference.name] >= 0.5)
            records[s.name]["agreement_with_reference_kernels"] = round(float(mutual.mean()), 6)
            if records[s.name]["passed"] and mutual.mean() >= KERNEL_AGREEMENT:
                continue
            check = (_op_check(Path(path), held, mutual, reference, s) if per_op else
                     {"note": "no per-op check: dynamic-range kernels differ from the reference ones by design"})
            records[s.name]["op_check"] = check
            if "first" in check:
                faults.append({"runtime": runtime, "kernel_set": s.name, "what": s.what, **check})
            elif not records[s.name]["passed"]:
                failed.append(s.name)
    passed = records[reference.name]["passed"] and not failed
    notes = [f"kernel fault in {f['kernel_set']}: {f['first']['op']} '{f['first']['name']}' (op {f['first']['position']}) "
             f"differs from {f['reference']} on {f['first']['values_off']:.2%} of its values; on these kernels mask "
             f"agreement with fp32 is {records[f['kernel_set']].get('agreement', float('nan')):.2%}" for f in faults]
    return {"sets": records, "unavailable": unavailable, "decided_on": reference.name, "faults": faults,
            "failed_without_fault": failed, "passed": passed, "notes": notes}


def _op_check(path: Path, held, mutual: np.ndarray, reference: KernelSet, other: KernelSet) -> dict:
    """``first_diverging_op`` on the held-out image where the two sets' masks differ most."""
    from egeunet.runtime.runners import open_runner

    if other.runtime not in ("onnxruntime", "litert") or reference.runtime != other.runtime:
        return {"note": f"per-op check not available for {other.name}: it runs whole graphs only"}
    worst = int(np.argmin(mutual.reshape(len(mutual), -1).mean(axis=1)))
    runner = open_runner(path, reference.runtime, options=reference.options)
    feed = runner.io.images_input(np.asarray(held.images[worst:worst + 1]))
    return {"image": worst, **first_diverging_op(path, feed, reference, other)}
