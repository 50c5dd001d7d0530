"""Benchmark every artifact against the fp32 PyTorch model: latency, memory, size, accuracy drift, a CI gate.

``run_benchmark(model_or_export_dir, data, BenchmarkConfig(...))`` returns the results that ``write_report`` turns
into report.md, results.csv/json and PNGs. Runtimes live in ``egeunet.runtime``, accuracy in ``egeunet.accuracy``;
this package never imports ``egeunet.export`` (nor the reverse).
"""
from egeunet.lazy import lazy_attributes

_PUBLIC = {
    "BenchmarkConfig": "egeunet.benchmark.harness",
    "run_benchmark": "egeunet.benchmark.harness",
    "table": "egeunet.benchmark.report",
    "write_report": "egeunet.benchmark.report",
}
__getattr__, __dir__ = lazy_attributes(_PUBLIC)
__all__ = ["BenchmarkConfig", "run_benchmark", "write_report", "table"]
