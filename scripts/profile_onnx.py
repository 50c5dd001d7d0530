"""Where ONNX Runtime spends its time on one ONNX file: kernel time per op type, per convolution kind (depthwise,
1x1, k x k) and the slowest nodes (1 thread).

    .venv/bin/python scripts/profile_onnx.py FILE.onnx [--runs 50] [--top 15] [--nchwc]

Uses ORT's own profiler (``SessionOptions.enable_profiling``) on a random float input of the file's input shape,
with the NCHWc layout pass disabled as egeunet's runner does (``--nchwc`` keeps it). Profiling adds a few
microseconds per node, so shares are more trustworthy than absolute times.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter

import numpy as np


def _conv_kinds(path: str) -> dict[str, str]:
    """Each named Conv node's kind: depthwise, 1x1 or k x k, from its weight's shape (egeunet's files leave default
    attributes out). ORT's NCHW depthwise convolutions are an im2col and a one-row GEMM per channel."""
    import onnx

    graph = onnx.load(path).graph
    dims = {init.name: list(init.dims) for init in graph.initializer}
    source = {node.output[0]: node.input[0] for node in graph.node if node.op_type in ("Cast", "DequantizeLinear")}
    kinds = {}
    for node in graph.node:
        shape = dims.get(node.input[1], dims.get(source.get(node.input[1], ""))) if node.op_type == "Conv" else None
        if node.name and shape:
            group = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)
            kernel = "x".join(map(str, shape[2:]))
            kinds[node.name] = "depthwise" if group > 1 else kernel
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--top", type=int, default=15, help="slowest nodes listed")
    parser.add_argument("--nchwc", action="store_true", help="keep ORT's NCHWc layout pass (default: disabled)")
    args = parser.parse_args()

    import onnxruntime as ort

    from egeunet.runtime.runners.onnx_runner import DISABLED_OPTIMIZERS

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.enable_profiling, options.log_severity_level = True, 3
    with tempfile.TemporaryDirectory() as work:
        options.profile_file_prefix = os.path.join(work, "ort")
        session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"],
                                       disabled_optimizers=[] if args.nchwc else DISABLED_OPTIMIZERS)
        feed = session.get_inputs()[0]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in feed.shape]
        dtype = np.uint8 if "uint8" in feed.type else np.float32
        x = np.random.default_rng(0).uniform(0, 255, shape).astype(dtype)
        for _ in range(args.runs):
            session.run(None, {feed.name: x})
        with open(session.end_profiling()) as f:
            events = json.load(f)
    by_type, count, by_node = Counter(), Counter(), Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_type[event["args"]["op_name"]] += event["dur"]
            count[event["args"]["op_name"]] += 1
            by_node[(event["name"][:-len("_kernel_time")], event["args"]["op_name"])] += event["dur"]
    total = sum(by_type.values())
    print(f"{args.model}: {total / args.runs / 1000:.2f} ms of kernel time per run (profiled, {args.runs} runs)\n")
    print("| op type | nodes | ms per run | share |\n|---|---|---|---|")
    for op, us in by_type.most_common():
        print(f"| {op} | {count[op] // args.runs} | {us / args.runs / 1000:.3f} | {100 * us / total:.1f}% |")
    kinds = _conv_kinds(args.model)
    by_kind = Counter()
    for (name, op), us in by_node.items():
        if op in ("Conv", "FusedConv"):
            by_kind[kinds.get(name, "other (renamed by ORT)")] += us
    print("\n| convolutions | ms per run | share |\n|---|---|---|")
    for kind, us in by_kind.most_common():
        print(f"| {kind} | {us / args.runs / 1000:.3f} | {100 * us / total:.1f}% |")
    print("\n| slowest nodes | op | ms per run | share |\n|---|---|---|---|")
    for (name, op), us in by_node.most_common(args.top):
        print(f"| {name} | {op} | {us / args.runs / 1000:.3f} | {100 * us / total:.1f}% |")


if __name__ == "__main__":
    main()
