"""Benchmark every artifact against the fp32 PyTorch model: latency, memory, size, accuracy drift, a CI gate.

``run_benchmark(model_or_export_dir, data, BenchmarkConfig(...))`` returns the results that
``write_report`` turns into report.md, results.csv/json and PNGs; ``rank_layers`` and
``keep_float_until`` find which int8 layers to keep in float. Runtimes live in ``runners``.
"""
from egeunet.lazy import lazy_attributes

_PUBLIC = {
    "Budget": "egeunet.benchmark.gate",
    "BenchmarkConfig": "egeunet.benchmark.harness",
    "run_benchmark": "egeunet.benchmark.harness",
    "table": "egeunet.benchmark.report",
    "write_report": "egeunet.benchmark.report",
    "keep_float_until": "egeunet.benchmark.sensitivity",
    "rank_layers": "egeunet.benchmark.sensitivity",
}
__getattr__, __dir__ = lazy_attributes(_PUBLIC)
__all__ = ["BenchmarkConfig", "Budget", "run_benchmark", "write_report", "table", "rank_layers", "keep_float_until"]
