"""Latency, load time and peak memory of one artifact, measured in a fresh Python process of its own.

Each runtime keeps its own allocator and thread pools, so two artifacts measured in one process would
share a resident-set high-water mark. The parent calls ``measure_isolated``, which runs this module
as ``python -m egeunet.benchmark.probe SPEC.json RESULT.json`` through the runtime layer's launcher (the child dies
with the parent on Ctrl-C, SIGTERM or a timeout) and reads the result file back. ``rss_base_mb`` is the resident set
before the runtime and model are loaded, ``peak_rss_mb`` the high-water mark after. Runner variants timed
together (ONNX Runtime's recommended and default options) share the process: the peak is then read after the row's
own runner has loaded and run once, before the other variants load.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _status_mb(key: str) -> float | None:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MiB; None where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_rss_mb() -> float:
    """High-water resident set of this process in MiB.

    Linux: VmHWM, not ru_maxrss, which execve carries over from the forking parent. macOS: ru_maxrss (bytes).
    """
    import resource

    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _reset_peak_rss() -> None:
    """Lower this process's high-water resident set to the current one (Linux >= 4.0); a no-op where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def probe(spec: dict) -> dict:
    """Open the artifact once per thread count and runner variant; time model-only (batch) and end-to-end
    (JPEG -> mask) calls, the variants' calls interleaved.

    ``spec["variants"]`` lists runner options (``open_runner``'s ``options``), the first one the row's own; each
    further variant (e.g. ONNX Runtime's default options) comes back under ``variants`` with what its runner loaded.
    """
    import numpy as np

    from egeunet.benchmark.latency import latency_stats, time_interleaved
    from egeunet.runtime.contract import synthetic_input
    from egeunet.runtime.runners import open_runner
    from egeunet.data import read_image
    from egeunet.preprocess import preprocess

    image_path = spec["image"]
    synthetic = spec.get("feed") == "synthetic"
    variants = spec.get("variants") or [{}]
    base = _status_mb("VmRSS")
    rows: list[list[dict]] = [[] for _ in variants]
    described: list[dict] = []
    peaks: list[float] = []  # with several variants: the row's own runner's peak, before the others load
    for threads in spec["threads"]:
        runners, loads = [], []
        for k, options in enumerate(variants):
            start = time.perf_counter()
            runner = open_runner(spec["path"], spec.get("runtime"), threads=threads, options=options)
            loads.append((time.perf_counter() - start) * 1000)
            runners.append(runner)
            if k == 0 and synthetic:  # a file without a contract: random input of its own shape, run as it is
                batch = synthetic_input(runner.input_spec().concrete(spec.get("size"), spec["batch"]),
                                        runner.input_spec().dtype)
            elif k == 0:
                batch = np.repeat(preprocess(read_image(image_path), runner.input_size), spec["batch"], axis=0)
            if len(variants) > 1:  # one untimed call each (alike for every variant) sizes the runtime's buffers
                runner.predict(batch)
                runner.predict_image(read_image(image_path))
                peaks += [_peak_rss_mb()] if k == 0 else []
        described = [r.describe() for r in runners]
        model = time_interleaved([lambda r=r: (r.run_raw if synthetic else r.predict)(batch) for r in runners],
                                 spec["runs"], spec["warmup"])
        end_to_end = [] if synthetic else time_interleaved(  # no end-to-end path without a contract's preprocessing
            [lambda r=r: r.predict_image(read_image(image_path)) >= 0.5 for r in runners], spec["runs"], spec["warmup"])
        for k in range(len(variants)):
            rows[k].append({"threads": threads, "load_ms": loads[k], "model": latency_stats(model[k]),
                            **({} if synthetic else {"end_to_end": latency_stats(end_to_end[k])})})
        del runners
        if len(variants) > 1:
            _reset_peak_rss()  # the next thread count's peak is its own runner's, not this one's other variants'
    return {"rss_base_mb": base, "peak_rss_mb": max(peaks) if peaks else _peak_rss_mb(), "by_threads": rows[0],
            "variants": [{"options": options, "runner": d, "by_threads": r}
                         for options, d, r in zip(variants[1:], described[1:], rows[1:])]}


def measure_isolated(path: str | Path, runtime: str | None, threads: list[int], runs: int, warmup: int,
                     image: str | Path, batch: int = 1, timeout: float = 900, variants: list[dict] | None = None,
                     feed: str = "canonical", size: int | None = None) -> dict:
    """Run ``probe`` in a child process; returns its result, or ``{"error": one line}`` if it failed.

    ``feed`` "synthetic": time the file on random input of its own shape (dynamic height and width ``size``) and
    dtype, model-only (a file without a contract has no known end-to-end path)."""
    from egeunet.runtime.launcher import CHILD, python_module

    spec = {"path": str(path), "runtime": runtime, "threads": list(threads), "runs": runs, "warmup": warmup,
            "image": str(image), "batch": batch, "variants": variants or [{}], "feed": feed, "size": size}
    with tempfile.TemporaryDirectory(prefix="egeunet-probe-") as tmp:
        spec_file, result_file = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_file.write_text(json.dumps(spec))
        try:
            proc = CHILD.run(python_module("egeunet.benchmark.probe", str(spec_file), str(result_file)), timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"latency probe timed out after {timeout:.0f} s"}
        if result_file.is_file():
            return json.loads(result_file.read_text())
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return {"error": f"latency probe exited with {proc.returncode}: {lines[-1] if lines else 'no message'}"}


def main(argv: list[str]) -> int:
    """Child entry point: read the spec, probe, write the result (or a one-line error) as JSON."""
    from egeunet.errors import EGEUNetError

    spec = json.loads(Path(argv[0]).read_text())
    try:
        result = probe(spec)
    except EGEUNetError as exc:
        result = {"error": str(exc)}
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
