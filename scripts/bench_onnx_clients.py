"""Run exported ONNX files in the other clients (OpenCV DNN, onnx.reference) and compare with ONNX Runtime (issue 11).

    .venv/bin/python scripts/bench_onnx_clients.py FILE.onnx [...] --data DIR [--split-file JSON] [--n 8]

Images: the first --n of the split (``egeunet benchmark``'s rule: the test part of --split-file, else all),
preprocessed by the contract. Prints a markdown table: bytes, and per client the mask agreement and max |Δprob|
with ONNX Runtime, and seconds per image (one process, no thread setting: a rough cost, not a benchmark).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from egeunet.benchmark.evalset import load_eval_set
from egeunet.benchmark.runners.onnx_runner import OnnxRunner
from egeunet.export.onnx_portable import CLIENTS, run_client
from egeunet.metrics import mask_agreement


def measure(path: Path, data: str, split_file: str | None, n: int) -> list[str]:
    """Markdown rows, one per client, for one ONNX file."""
    runner = OnnxRunner(path)
    evalset = load_eval_set(data, None, runner.io.size, split_file, limit=n)
    reference = runner.predict(evalset.inputs)
    rows = []
    for client in CLIENTS:
        start = time.perf_counter()
        try:
            out = runner.io.output(run_client(client, path, runner.io.canonical_input(evalset.inputs)))
        except Exception as exc:  # a client that cannot run the file is a result, not a crash
            rows.append(f"| {path} | {path.stat().st_size:,} | {client} | fails: {str(exc).splitlines()[0][:90]} | | |")
            continue
        seconds = (time.perf_counter() - start) / len(evalset.inputs)
        result = mask_agreement(out, reference)
        rows.append(f"| {path} | {path.stat().st_size:,} | {client} | {result['agreement']:.4f} | "
                    f"{result['max_abs_diff']:.2e} | {seconds:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--split-file", help="split.json of `egeunet train` (its test part is used)")
    parser.add_argument("--n", type=int, default=8, help="images (default 8)")
    args = parser.parse_args()
    print(f"{args.n} images of {args.data}; reference: ONNX Runtime on the same file\n")
    print("| file | bytes | client | mask agreement | max abs diff | s/image |\n|---|---|---|---|---|---|")
    for path in args.files:
        print("\n".join(measure(path, args.data, args.split_file, args.n)))


if __name__ == "__main__":
    main()
