"""The benchmark sweep: every artifact against the fp32 PyTorch reference, one status row each, never aborting.

``run_benchmark`` measures size, accuracy and drift in this process and latency, load time and peak
memory in a child process per artifact (``probe``), then returns the results ``report`` writes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from egeunet.benchmark.artifacts import Target, collect_targets, manifest_source, reference_target
from egeunet.benchmark.gate import Budget, check
from egeunet.errors import EGEUNetError

NOT_RUNNABLE = "not runnable here"


@dataclass
class BenchmarkConfig:
    """How to measure: thread counts, timed runs, warm-up, batch, data split, gate budget, overlay count."""

    threads: list[int] = field(default_factory=lambda: [1])
    runs: int = 100
    warmup: int = 10
    batch: int = 1
    split: str | None = None
    split_file: str | None = None
    limit: int | None = None
    worst: int = 4
    budget: Budget = field(default_factory=Budget)
    sensitivity: bool = True


def _one_line(exc: BaseException, path: Path | None = None) -> str:
    """First line of an error, without a leading "PATH: " (the row already names the file)."""
    text = str(exc).strip().splitlines()
    line = text[0][:300] if text else type(exc).__name__
    return line.removeprefix(f"{path}: ") if path else line


def predict_all(runner, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    """Foreground probabilities N x S x S of a runner over preprocessed inputs N x 3 x S x S."""
    return np.concatenate([runner.predict(inputs[i:i + batch])[:, 0] for i in range(0, len(inputs), batch)])


def resolve_reference(targets: list[Target], manifest: dict | None, root: Path,
                      reference: str | Path | None) -> Target | None:
    """The PyTorch reference: ``--reference``, else the manifest's source checkpoint, else the one .pt benchmarked."""
    if reference:
        return reference_target(Path(reference))
    if manifest is not None:
        path, sha = manifest_source(manifest, root)
        if path is not None:
            return reference_target(path, sha)
    torch_targets = [t for t in targets if t.runtime == "pytorch"]
    return reference_target(torch_targets[0].path) if len(torch_targets) == 1 else None


def _base_row(target: Target, is_reference: bool) -> dict:
    return {"name": target.name, "file": str(target.path), "format": target.format, "precision": target.precision,
            "method": target.method, "runtime": target.runtime or "", "reference": is_reference, "status": "ok",
            "note": ""}


def _size_columns(target: Target) -> dict:
    from egeunet.benchmark.sizes import artifact_sizes

    if not target.path.exists():
        return {}
    try:
        return artifact_sizes(target.path)
    except Exception as exc:  # noqa: BLE001 - a size that cannot be parsed must not stop the sweep
        return {"bytes": target.path.stat().st_size, "size_note": f"could not parse: {_one_line(exc)}"}


def _latency_columns(target: Target, config: BenchmarkConfig, image: Path) -> dict:
    from egeunet.benchmark.probe import measure_isolated

    result = measure_isolated(target.path, target.runtime, config.threads, config.runs, config.warmup, image,
                              config.batch)
    if "error" in result:
        return {"latency_error": result["error"]}
    return result


class Sweep:
    """State shared across the artifacts of one run: eval set, reference probabilities and metrics."""

    def __init__(self, evalset, config: BenchmarkConfig) -> None:
        self.evalset = evalset
        self.config = config
        self.reference_probs: np.ndarray | None = None
        self.reference_metrics: dict | None = None
        self.worst: dict[str, dict] = {}

    def measure(self, target: Target, is_reference: bool) -> dict:
        """One row: size always; accuracy, drift and latency when the artifact runs here."""
        from egeunet.benchmark.drift import compare
        from egeunet.benchmark.runners import open_runner

        row = _base_row(target, is_reference)
        row.update(_size_columns(target))
        if target.problem:
            row.update(status="failed", note=target.problem)
            return row
        try:
            runner = open_runner(target.path, target.runtime, threads=max(self.config.threads))
            probs = predict_all(runner, self.evalset.inputs)
            del runner
            result = compare(None if is_reference else self.reference_probs, probs, self.evalset.masks,
                             self.reference_metrics)
        except EGEUNetError as exc:
            status = "not runnable" if NOT_RUNNABLE in str(exc) else "failed"
            row.update(status=status, note=_one_line(exc, target.path))
            return row
        except Exception as exc:  # noqa: BLE001 - any runtime crash is this artifact's row, not the sweep's end
            row.update(status="failed", note=f"{type(exc).__name__}: {_one_line(exc, target.path)}")
            return row
        if is_reference:
            self.reference_probs, self.reference_metrics = probs, result.get("metrics")
        per_image = result.pop("per_image_agreement", None)
        if per_image is not None:
            order = np.argsort(per_image)[:self.config.worst]
            self.worst[target.name] = {"index": order.tolist(), "agreement": per_image[order].tolist(),
                                       "probs": probs[order]}
        row.update(result.pop("metrics", {}))
        row.update(result)
        row.update(_latency_columns(target, self.config, self.evalset.images[0]))
        return row


def run_benchmark(model_or_dir: str | Path, data: str | Path, config: BenchmarkConfig,
                  reference: str | Path | None = None, runtimes: list[str] | None = None) -> dict:
    """Benchmark every artifact (plus the PyTorch reference) on ``data``; returns the results dict ``report`` writes."""
    from egeunet.benchmark.environment import environment
    from egeunet.benchmark.evalset import load_eval_set
    from egeunet.benchmark.runners import list_runtimes

    unknown = [r for r in runtimes or [] if r not in list_runtimes()]
    if unknown:
        raise EGEUNetError(f"unknown runtime {unknown[0]!r}; choose from {', '.join(list_runtimes())}")
    root = Path(model_or_dir)
    targets, manifest = collect_targets(root)
    ref = resolve_reference(targets, manifest, root, reference)
    targets = [t for t in targets if ref is None or t.path.resolve() != ref.path.resolve()]
    if runtimes:
        targets = [t for t in targets if t.runtime in runtimes or t.problem]
    size, recorded = _reference_facts(ref, data)
    evalset = load_eval_set(data, config.split, size, config.split_file or recorded, config.limit)
    sweep = Sweep(evalset, config)
    rows = []
    queue = ([(ref, True)] if ref else []) + [(t, False) for t in targets]
    for target, is_reference in tqdm(queue, desc="benchmarking artifacts", unit="artifact"):
        rows.append(sweep.measure(target, is_reference))
        rows[-1]["gate"], rows[-1]["gate_reasons"] = check(rows[-1], config.budget)
    if ref is not None and rows[0]["status"] != "ok":
        for row in rows[1:]:
            row["note"] = "; ".join(filter(None, [row["note"], "no drift: the reference did not run"]))
    sensitivity = _sensitivity(targets, evalset, sweep, config)
    return {"environment": environment(), "model": str(root), "data": str(data), "split": evalset.split_source,
            "images": len(evalset.ids), "masks": evalset.masks is not None,
            "reference": str(ref.path) if ref else None, "config": asdict(config), "rows": rows,
            "worst": sweep.worst, "evalset": evalset, "reference_probs": sweep.reference_probs,
            "sensitivity": sensitivity}


def _reference_facts(ref: Target | None, data: str | Path) -> tuple[int, str | None]:
    """Input size and split file the reference checkpoint recorded for ``data`` (256 and None when unreadable)."""
    if ref is None or ref.problem:
        return 256, None
    from egeunet.checkpoint import read_checkpoint
    from egeunet.training.dataset import recorded_split

    try:
        return int(read_checkpoint(ref.path).get("input_size", 256)), recorded_split(str(ref.path), str(data))
    except EGEUNetError:
        return 256, None


def _sensitivity(targets: list[Target], evalset, sweep: Sweep, config: BenchmarkConfig) -> list[dict]:
    """Per-layer sensitivity of each int8 artifact (see ``sensitivity``); empty when disabled or without a reference."""
    if not config.sensitivity or sweep.reference_probs is None:
        return []
    from egeunet.benchmark.sensitivity import sensitivity_for

    return sensitivity_for(targets, evalset, sweep.reference_probs)
