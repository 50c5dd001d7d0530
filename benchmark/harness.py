"""The benchmark sweep: every (artifact, runtime) target against the fp32 PyTorch reference, one row each, never aborting.

``run_benchmark`` measures size, accuracy and drift in this process (``egeunet.accuracy``) and latency, load time and
peak memory in a child process per target (``probe``), then returns the results ``report`` writes. An ONNX target is
timed with its recommended ORT options (the artifact contract's) and with ORT's defaults, calls interleaved in one
child; its accuracy is measured once, with the options its row names. A gate that was
asked for and could not be evaluated (no reference, no masks, an artifact that fails) fails, saying why; a row whose
runtime cannot run on this platform (CoreML off macOS) is "skipped" with its reason, unless --runtimes named it.
"""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from egeunet.accuracy import Gate, compare, truth_metrics
from egeunet.benchmark.agreement import agreement_matrix
from egeunet.benchmark.artifacts import collect_targets, reference_target
from egeunet.benchmark.evalset import EvalSet, load_eval_set
from egeunet.errors import EGEUNetError
from egeunet.metrics import binarize
from egeunet.progress import progress
from egeunet.runtime.artifacts import Target, manifest_source
from egeunet.runtime.contract import TensorSpec, synthetic_input

NOT_RUNNABLE = "not runnable here"
ORT_CHOICES = ("both", "recommended", "default")  # ONNX Runtime session options a benchmark times


@dataclass
class BenchmarkConfig:
    """How to measure: thread counts, timed runs, warm-up, batch, data split, gate, overlay count, ORT options."""

    threads: list[int] = field(default_factory=lambda: [1])
    runs: int = 100
    warmup: int = 10
    batch: int = 1
    split: str | None = None
    split_file: str | None = None
    limit: int | None = None
    worst: int = 4
    gate: Gate = field(default_factory=Gate)
    ort_options: str = "both"  # ONNX Runtime session options timed: "both", "recommended" or "default"
    size: int | None = None  # height = width for a file without a contract whose input leaves them dynamic


def _one_line(exc: BaseException, path: Path | None = None) -> str:
    """First line of an error, without a leading "PATH: " (the row already names the file)."""
    text = str(exc).strip().splitlines()
    line = text[0][:300] if text else type(exc).__name__
    return line.removeprefix(f"{path}: ") if path else line


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
    return reference_target(torch_targets[0].artifact.path) if len(torch_targets) == 1 else None


def _base_row(target: Target, is_reference: bool) -> dict:
    a = target.artifact
    return {"name": target.name if not is_reference else a.name, "file": str(a.path), "format": a.format,
            "precision": a.precision, "method": a.method, "runtime": target.runtime or "", "reference": is_reference,
            "status": "ok", "note": ""}


def _size_columns(path: Path) -> dict:
    from egeunet.benchmark.sizes import artifact_sizes

    if not path.exists():
        return {}
    try:
        return artifact_sizes(path)
    except Exception as exc:  # noqa: BLE001 - a size that cannot be parsed must not stop the sweep
        return {"bytes": path.stat().st_size if path.is_file() else None, "size_note": f"could not parse: {_one_line(exc)}"}


EMULATED_RUNS = 3  # timed runs of an emulated runtime: seconds each, and not comparable with native rows anyway


def _latency_columns(target: Target, config: BenchmarkConfig, image: Path, emulated: bool = False,
                     variants: list[dict] | None = None, feed: str = "canonical") -> dict:
    from egeunet.benchmark.probe import measure_isolated

    runs, warmup = (min(config.runs, EMULATED_RUNS), 0) if emulated else (config.runs, config.warmup)
    result = measure_isolated(target.artifact.path, target.runtime, config.threads, runs, warmup, image, config.batch,
                              variants=variants, feed=feed, size=config.size)
    if "error" in result:
        return {"latency_error": result["error"]}
    extra = result.pop("variants")
    if extra:  # ONNX Runtime's default options, timed interleaved with the recommended ones
        result["ort_default"] = _ort_default(result["by_threads"], extra[0])
    return result


def _runner_options(runtime: str | None, config: BenchmarkConfig) -> dict:
    """The options a row's own runner is opened with: ONNX Runtime's recommended options unless only defaults are asked."""
    if runtime != "onnxruntime":
        return {}
    return {"ort_options": "default" if config.ort_options == "default" else "recommended"}


def _timed_variants(runtime: str | None, config: BenchmarkConfig, described: dict) -> list[dict]:
    """Runner options to time: the row's own, then ORT's defaults when asked for and the recommendation differs."""
    own = _runner_options(runtime, config)
    if own.get("ort_options") == "recommended" and config.ort_options == "both" and described.get("disabled_optimizers"):
        return [own, {"ort_options": "default"}]
    return [own]


def _ort_default(recommended: list[dict], variant: dict) -> dict:
    """The default-options timings and, per thread count, recommended p50 / default p50 (below 1: it pays here)."""
    ratios = [{"threads": r["threads"],
               "model_p50": r["model"]["p50_ms"] / d["model"]["p50_ms"],
               "end_to_end_p50": r["end_to_end"]["p50_ms"] / d["end_to_end"]["p50_ms"]}
              for r, d in zip(recommended, variant["by_threads"])]
    return {"disabled_optimizers": variant["runner"]["disabled_optimizers"], "by_threads": variant["by_threads"],
            "recommended_over_default": ratios}


class Sweep:
    """State shared across the targets of one run: eval set, reference probabilities and metrics, worst images."""

    def __init__(self, evalset, config: BenchmarkConfig, image: Path, named: list[str] | None = None) -> None:
        """``image``: the file end-to-end timings decode (the eval set's first, or a synthetic one without data);
        ``named``: the runtimes the user asked for (``--runtimes``): a row of one that cannot run on this platform
        fails instead of being skipped."""
        self.evalset = evalset
        self.named = named or []
        self.image = image
        self.config = config
        self.reference_probs: np.ndarray | None = None
        self.reference_metrics: dict | None = None
        self.reference_problem = ("no reference checkpoint (give --reference CKPT)" if len(evalset.ids)
                                  else "no --data: nothing to measure accuracy on")
        self.worst: dict[str, dict] = {}
        self.has_reference = False  # a reference was given (it may have failed to run)
        self.masks: dict[str, tuple[str, np.ndarray]] = {}  # row name: (runtime, bool masks), for the agreement matrix

    def measure(self, target: Target, is_reference: bool) -> dict:
        """One row: size always; accuracy, drift and latency when the target runs here; its gate verdict."""
        from egeunet.runtime.runners import open_runner

        row = _base_row(target, is_reference)
        row.update(_size_columns(target.artifact.path))
        self.has_reference = self.has_reference or is_reference
        if target.problem:
            row.update(status="not exported" if target.artifact.optional else "failed", note=target.problem)
            return self._gate(row, None, is_reference)
        try:
            runner = open_runner(target.artifact.path, target.runtime, threads=max(self.config.threads),
                                 options=_runner_options(target.runtime, self.config))
            described = runner.describe()
            feed, row["note"] = self._feed(runner)
            probs = runner.probabilities(self.evalset.inputs) if feed == "canonical" and len(self.evalset.ids) else None
            if probs is not None and not runner.io.contract and not 0 <= probs.min() <= probs.max() <= 1:
                feed, probs = "synthetic", None
                row["note"] = "no egeunet contract, output outside [0, 1]: latency, memory and size only"
            if feed == "synthetic":  # a dynamic size nothing fills is this row's one-line error, before the probe
                spec = runner.input_spec()
                row.update(input_name=spec.name, input_shape=list(spec.concrete(self.config.size, self.config.batch)),
                           input_dtype=spec.dtype)
            del runner
            if probs is not None:
                self.masks[row["name"]] = (target.runtime, binarize(probs))
        except EGEUNetError as exc:
            named = target.runtime in self.named
            status = "failed" if NOT_RUNNABLE not in str(exc) else "not runnable" if named else "skipped"
            row.update(status=status, note=_one_line(exc, target.artifact.path))
            return self._gate(row, None, is_reference)
        except Exception as exc:  # noqa: BLE001 - any runtime crash is this target's row, not the sweep's end
            row.update(status="failed", note=f"{type(exc).__name__}: {_one_line(exc, target.artifact.path)}")
            return self._gate(row, None, is_reference)
        if described.get("emulated"):
            row["emulated"] = described["emulated"]
        if "ort_options" in described:  # accuracy is measured once, with these options; latency with each variant
            row.update({k: described[k] for k in ("ort_options", "disabled_optimizers", "recommended_disabled_optimizers",
                                                  "recommended_from")})
        masks = self.evalset.masks
        if probs is None:
            comparison = None
        elif is_reference:
            self.reference_probs = probs
            self.reference_metrics = truth_metrics(probs, masks) if masks is not None else None
            row.update(self.reference_metrics or {})
            comparison = None
        else:
            comparison = compare(probs, self.reference_probs, masks)
            row.update(_accuracy_columns(comparison, self.reference_metrics))
            if comparison.per_image_agreement is not None:
                per_image = comparison.per_image_agreement
                order = np.argsort(per_image, kind="stable")[:self.config.worst]
                self.worst[target.name] = {"index": order.tolist(), "agreement": per_image[order].tolist(),
                                           "probs": probs[order]}
        variants = _timed_variants(target.runtime, self.config, described) if feed == "canonical" else None
        row.update(_latency_columns(target, self.config, self.image, bool(row.get("emulated")), variants, feed))
        return self._gate(row, comparison, is_reference)

    def _feed(self, runner) -> tuple[str, str]:
        """How a row is fed, and the note saying why: "canonical" (``egeunet.preprocess`` through the contract; a
        file without one only when its output is a mask and there are images and a reference is given) or
        "synthetic" (random input of the file's own shape and dtype: latency, memory and size only)."""
        if runner.io.contract:
            return "canonical", ""
        spec, out, head = runner.input_spec(), runner.output_spec(), "no egeunet contract"
        if not out.shape or None in out.shape[1:]:  # the file does not say (ONNX shape inference gave up): run it once
            x = synthetic_input(spec.concrete(self.config.size, spec.fixed_batch or 1), spec.dtype)
            out = TensorSpec(out.name, runner.run_raw(x).shape, out.dtype)
        if not out.mask_like():
            return "synthetic", f"{head}, output {list(out.shape)} is not a mask: latency, memory and size only"
        if not len(self.evalset.ids) or not self.has_reference:
            return "synthetic", f"{head}: latency, memory and size only (accuracy needs --data and a reference)"
        size = self.evalset.inputs.shape[-1]
        channels = spec.shape[-1] if spec.layout == "NHWC" else spec.shape[1]
        if spec.dtype != "float32" or channels != 3 or any(d not in (None, size) for d in spec.spatial):
            return "synthetic", (f"{head}, input {list(spec.shape)} {spec.dtype} does not take the reference's float32 "
                                 f"3 x {size} x {size}: latency, memory and size only")
        return "canonical", (f"{head}: fed egeunet.preprocess output ({spec.layout} float32 0-255), "
                             "output read as probabilities")

    def _gate(self, row: dict, comparison, is_reference: bool) -> dict:
        """The row's gate verdict: "" without a gate or for the reference, else "pass" or "fail" with reasons."""
        gate = self.config.gate
        row["gate"], row["gate_reasons"] = "", []
        if is_reference and row["status"] != "ok":
            self.reference_problem = f"reference {row['file']}: {row['note'] or row['status']}"
            if gate.active:  # nothing can be checked against a reference that does not run
                row["gate"], row["gate_reasons"] = "fail", [f"the reference did not run: {row['note'] or row['status']}"]
        if not gate.active or is_reference or row["status"] in ("not exported", "skipped"):  # nothing to judge
            return row
        if row["status"] != "ok":
            row["gate"], row["gate_reasons"] = "fail", [f"could not be checked: {row['status']}: {row['note']}"]
            return row
        missing = self.reference_problem if self.reference_probs is None else row["note"] if comparison is None else ""
        verdict = gate.check(comparison if comparison is not None and comparison.images else None, missing)
        row["gate"], row["gate_reasons"] = ("pass" if verdict.passed else "fail"), verdict.reasons
        row["gate_criteria"] = verdict.criteria
        return row


def _accuracy_columns(c, reference_metrics: dict | None) -> dict:
    """A row's accuracy columns: truth metrics and their drop from PyTorch's (points, positive = worse), agreement,
    |Δprob|, 95% intervals."""
    out: dict = {}
    scores = c.truth_scores("artifact")
    if scores is not None:
        out.update(scores)
        if reference_metrics:
            out["miou_drop_points"] = 100 * (reference_metrics["miou"] - scores["miou"])  # positive: worse
            out["dsc_drop_points"] = 100 * (reference_metrics["dsc"] - scores["dsc"])
            out["miou_drop_interval"] = c.interval("iou_drop_points")
    if c.agreement is not None:
        out.update(agreement=c.agreement, agreement_interval=c.interval("agreement"),
                   iou_vs_reference=c.iou_vs_reference, max_abs_dprob=c.max_abs_dprob,
                   mean_abs_dprob=c.mean_abs_dprob)
    out["images"] = c.images
    return out


@contextlib.contextmanager
def _eval_inputs(data: str | Path | None, config: BenchmarkConfig, size: int,
                 split_file: str | None) -> Iterator[tuple[EvalSet, Path]]:
    """The eval set and the image end-to-end timings decode; without ``data`` an empty set and one random RGB JPEG
    (in a temporary folder removed afterwards): latency, memory and size only."""
    if data is not None:
        evalset = load_eval_set(data, config.split, size, split_file, config.limit)
        yield evalset, evalset.images[0]
        return
    import cv2

    with tempfile.TemporaryDirectory(prefix="egeunet-benchmark-") as tmp:
        image = Path(tmp) / "synthetic.jpg"
        cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
        yield EvalSet([], [], np.empty((0, 3, size, size), np.float32), None, "no --data: synthetic input"), image


def run_benchmark(model_or_dir: str | Path, data: str | Path | None, config: BenchmarkConfig,
                  reference: str | Path | None = None, runtimes: list[str] | None = None) -> dict:
    """Benchmark every target (plus the PyTorch reference) on ``data`` (None: synthetic input, latency, memory and
    size only); returns the results dict ``report`` writes."""
    from egeunet.benchmark.environment import environment
    from egeunet.runtime.runners import list_runtimes

    if config.ort_options not in ORT_CHOICES:
        raise EGEUNetError(f"--ort-options must be one of {', '.join(ORT_CHOICES)}, got {config.ort_options!r}")
    unknown = [r for r in runtimes or [] if r not in list_runtimes()]
    if unknown:
        raise EGEUNetError(f"unknown runtime {unknown[0]!r}; choose from {', '.join(list_runtimes())}")
    root = Path(model_or_dir)
    targets, manifest = collect_targets(root, runtimes)
    ref = resolve_reference(targets, manifest, root, reference)
    targets = [t for t in targets if ref is None or not t.artifact.path.exists()
               or t.artifact.path.resolve() != ref.artifact.path.resolve()]
    if runtimes:  # after the reference is chosen: a .pt outside --runtimes still serves as the reference
        targets = [t for t in targets if t.runtime in runtimes or t.problem]
    size, recorded = _reference_facts(ref, data)
    queue = ([(ref, True)] if ref else []) + [(t, False) for t in targets]
    with _eval_inputs(data, config, size, config.split_file or recorded) as (evalset, image):
        sweep = Sweep(evalset, config, image, runtimes)
        rows = [sweep.measure(*item) for item in progress(queue, desc="benchmarking artifacts", unit="artifact")]
    if ref is not None and rows[0]["status"] != "ok":
        for row in rows[1:]:
            row["note"] = "; ".join(filter(None, [row["note"], "no drift: the reference did not run"]))
    return {"environment": environment(), "model": str(root), "data": None if data is None else str(data),
            "split": evalset.split_source, "images": len(evalset.ids), "masks": evalset.masks is not None,
            "reference": str(ref.artifact.path) if ref else None, "config": asdict(config), "rows": rows,
            "worst": sweep.worst, "agreement": agreement_matrix(sweep.masks), "evalset": evalset,
            "reference_probs": sweep.reference_probs, "targets": targets, "sensitivity": []}


def _reference_facts(ref: Target | None, data: str | Path | None) -> tuple[int, str | None]:
    """Input size and split file the reference checkpoint recorded for ``data`` (256 and None when unreadable)."""
    if ref is None or ref.problem:
        return 256, None
    from egeunet.checkpoint import read_checkpoint
    from egeunet.training.dataset import recorded_split

    try:
        size = int(read_checkpoint(ref.artifact.path).get("input_size", 256))
        return size, None if data is None else recorded_split(str(ref.artifact.path), str(data))
    except EGEUNetError:
        return 256, None
