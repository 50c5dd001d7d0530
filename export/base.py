"""The shape every format module shares (recipes, export, validate, describe), the artifact contract, the registry.

``get_format(name)`` returns a new exporter each call, so a conversion cache belongs to one export run; caches are
keyed by the deploy form's content (``deploy_key``), never by object identity.
"""
from __future__ import annotations

import hashlib
import importlib
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from egeunet.errors import EGEUNetError
from egeunet.export.recipes import Recipe
from egeunet.export.spec import ExportSpec, FormatConfig

BUDGET_KEY = "egeunet.int8_drift_budget"  # metadata key of the drift-budget search's record in an int8 artifact
FORMATS: dict[str, type["Exporter"]] = {}  # filled as the exporter modules the format descriptors name are imported


def register(cls: type["Exporter"]) -> type["Exporter"]:
    """Class decorator adding a format's exporter class under ``cls.config.name``."""
    FORMATS[cls.config.name] = cls
    return cls


def list_formats() -> list[str]:
    """Names of every export format: each format descriptor (``egeunet.runtime.formats``) naming an exporter, in
    their order, once its module has registered it."""
    from egeunet.runtime.formats import export_formats, file_format

    named = export_formats()
    for name in named:
        if name not in FORMATS:
            importlib.import_module(file_format(name).exporter)  # light: heavy libraries are imported inside functions
    return [name for name in named if name in FORMATS]


def get_format(name: str) -> "Exporter":
    """A new exporter of a format (its caches live as long as it does); one-line error for an unknown name."""
    names = list_formats()
    if name not in names:
        raise EGEUNetError(f"unknown format {name!r}; choose from {', '.join(names)}")
    return FORMATS[name]()


def deploy_key(deploy) -> str:
    """Content hash of a deploy form: its class, size, layout, preprocessing and every tensor's bytes."""
    digest = hashlib.sha256(f"{type(deploy).__name__}:{deploy.size}:{deploy.nhwc}:{deploy.bake_preprocess}".encode())
    for name, tensor in deploy.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def contract(spec: ExportSpec, config: FormatConfig, recipe: Recipe) -> dict:
    """The artifact contract (``egeunet.runtime.contract.make_contract``) of one recipe of a format in this export."""
    from egeunet.runtime.contract import make_contract

    pixels = "uint8" if config.uint8_input else "float32"
    return make_contract(input_name=config.input_name, output_name=config.output_name, size=spec.size,
                         layout=spec.layout, input_dtype=pixels if spec.bake_preprocess else recipe.io,
                         output_dtype=recipe.io, baked=spec.bake_preprocess, precision=recipe.precision,
                         variant=recipe.name, integer_only=recipe.integer_only, runtime_options=config.runtime_options)


def contract_json(spec: ExportSpec, config: FormatConfig, recipe: Recipe) -> str:
    """The contract as compact JSON, the form stored in artifact metadata."""
    from egeunet.runtime.contract import contract_json as as_json

    return as_json(contract(spec, config, recipe))


class Exporter(ABC):
    """One format: ``recipes`` per precision, ``export`` one recipe, ``validate`` it, ``describe`` a file."""

    config: FormatConfig

    @abstractmethod
    def recipes(self, precision: str, spec: ExportSpec, int8_io: bool = False) -> list[Recipe]:
        """Artifacts this format builds for one precision (TFLite int8 is two: dynamic-range and full)."""

    @abstractmethod
    def export(self, deploy, spec: ExportSpec, out_path: Path, recipe: Recipe) -> Path:
        """Convert the deploy form (``egeunet.model.deploy``) to ``out_path`` (written atomically)."""

    @abstractmethod
    def describe(self, path: Path) -> dict:
        """Inputs, outputs (names, shapes, dtypes), op counts and quantisation details read from the file."""

    def validate(self, path: Path, reference: np.ndarray, held_out, spec: ExportSpec, recipe: Recipe) -> dict:
        """Run the artifact in its runtime on held-out images and apply the precision's gate against PyTorch; int8 on
        every kernel set of the runtime (``kernel_check``): decided on the reference kernels, a faulty set named."""
        from egeunet.runtime.runners import open_runner

        if recipe.precision == "int8":
            from egeunet.export.kernel_check import judge_on_kernel_sets

            judged = judge_on_kernel_sets(path, self.config.runtime, reference, held_out, spec.gates["int8"],
                                          per_op=recipe.static)
            if judged is not None:
                decided = judged["sets"][judged["decided_on"]]
                return {**decided, "passed": judged["passed"], "kernels": judged,
                        "reasons": decided.get("reasons", []) + [f"fails on {name} without a kernel fault named: the "
                                                                 "quantization is too close to the gate for its rounding"
                                                                 for name in judged["failed_without_fault"]]}
        runner = open_runner(path, self.config.runtime, threads=1)
        probs = np.stack([runner.predict_image(image) for image in held_out.images])
        return validation_record(probs, reference, held_out.masks, spec.gates[recipe.precision])

    def check_precision(self, precision: str) -> None:
        """One-line error when this format cannot build ``precision``."""
        if precision not in self.config.precisions:
            raise EGEUNetError(f"format {self.config.name} does not support precision {precision!r}; "
                               f"choose from {', '.join(self.config.precisions)}")


def validation_record(probs: np.ndarray, reference: np.ndarray | tuple[np.ndarray, np.ndarray | None],
                      truth: np.ndarray | None, gate) -> dict:
    """The manifest's validation record: the comparison's numbers (units in the names) and the gate's verdict.

    Without ground-truth masks, the fp32 PyTorch masks stand in for the truth of the IoU drop. ``reference``: fp32
    probabilities, or a pair (fp32, exact): masks against fp32, max |dprob| against ``exact``, what the artifact is
    meant to compute (fp16: the model with its float16 weights, in float64); ``exact`` None (not known): max |dprob|
    is not checked, and the record says so.
    """
    import dataclasses

    from egeunet.accuracy import compare

    reference, exact = reference if isinstance(reference, tuple) else (reference, reference)
    unchecked = {}
    if exact is None and gate.max_abs_dprob is not None:
        gate = dataclasses.replace(gate, max_abs_dprob=None)
        unchecked = {"max_abs_dprob_not_checked": "what this artifact computes is not known (its recipe names no "
                                                  "float16 weights): judged on mask agreement with fp32 only"}
    label = "ground truth" if truth is not None else "fp32 PyTorch masks"
    try:
        comparison = compare(probs, reference, truth if truth is not None else reference >= 0.5, label, exact)
    except ValueError as exc:  # the artifact's output has the wrong shape
        return {"passed": False, "gate": gate.describe(), "reasons": [str(exc)]}
    return {**comparison.summary(), **gate.check(comparison).describe(), **unchecked}
