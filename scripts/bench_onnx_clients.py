"""Run exported ONNX files in the other clients (OpenCV DNN, onnx.reference) and compare with ONNX Runtime (issue 11).

    .venv/bin/python scripts/bench_onnx_clients.py FILE.onnx [...] --data DIR [--split-file JSON] [--n 8] [--runs 60]

Images: the first --n of the split (``egeunet benchmark``'s rule: the test part of --split-file, else all),
preprocessed by the contract. Prints a markdown table: bytes, ONNX Runtime latency (batch 1, one thread, median of
--runs, the files' calls interleaved so a busy machine favours none), and per client the mask agreement and max
|Δprob| with ONNX Runtime and seconds per image (no thread setting: a rough cost, not a benchmark).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench_export import latency_ms

from egeunet.benchmark.evalset import load_eval_set
from egeunet.runtime.runners.onnx_runner import OnnxRunner
from egeunet.export.onnx_portable import CLIENTS, run_client
from egeunet.accuracy import compare


def measure(path: Path, evalset, latency: float) -> list[str]:
    """Markdown rows, one per client, for one ONNX file."""
    runner = OnnxRunner(path)
    reference = runner.predict(evalset.inputs)
    rows = []
    for client in CLIENTS:
        start = time.perf_counter()
        try:
            out = runner.io.output(run_client(client, path, runner.io.canonical_input(evalset.inputs)))
        except Exception as exc:  # a client that cannot run the file is a result, not a crash
            rows.append(f"| {path} | {path.stat().st_size:,} | {latency:.1f} | {client} | "
                        f"fails: {str(exc).splitlines()[0][:90]} | | |")
            continue
        seconds = (time.perf_counter() - start) / len(evalset.inputs)
        result = compare(out[:, 0], reference[:, 0])
        rows.append(f"| {path} | {path.stat().st_size:,} | {latency:.1f} | {client} | {result.agreement:.4f} | "
                    f"{result.max_abs_dprob:.2e} | {seconds:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--split-file", help="split.json of `egeunet train` (its test part is used)")
    parser.add_argument("--n", type=int, default=8, help="images (default 8)")
    parser.add_argument("--runs", type=int, default=60, help="timed ONNX Runtime runs per file (default 60)")
    args = parser.parse_args()
    runners = {path: OnnxRunner(path, threads=1) for path in args.files}
    evalset = load_eval_set(args.data, None, next(iter(runners.values())).io.size, args.split_file, limit=args.n)
    latency = latency_ms({path: runner.predict for path, runner in runners.items()}, evalset.inputs[:1], args.runs)
    print(f"{len(evalset.inputs)} images: {evalset.split_source}; reference: ONNX Runtime on the same file\n")
    print("| file | bytes | ORT p50 ms | client | mask agreement | max abs diff | s/image |\n|---|---|---|---|---|---|---|")
    for path in args.files:
        print("\n".join(measure(path, evalset, latency[path])))


if __name__ == "__main__":
    main()
