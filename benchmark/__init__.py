"""Benchmark every artifact against the fp32 PyTorch model: latency, memory, size, accuracy drift, a CI gate.

``run_benchmark(model_or_export_dir, data, BenchmarkConfig(...))`` returns the results that
``write_report`` turns into report.md, results.csv/json and PNGs; ``rank_layers`` and
``keep_float_until`` find which int8 layers to keep in float. Runtimes live in ``runners``.
"""
from egeunet.benchmark.gate import Budget
from egeunet.benchmark.harness import BenchmarkConfig, run_benchmark
from egeunet.benchmark.report import table, write_report
from egeunet.benchmark.sensitivity import keep_float_until, rank_layers

__all__ = ["BenchmarkConfig", "Budget", "run_benchmark", "write_report", "table", "rank_layers", "keep_float_until"]
