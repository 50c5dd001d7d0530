"""Quantization as data: a ``Recipe`` says what one artifact computes in which type and where its scales come from.

Exporters build recipes (``Exporter.recipes``) and then act on their fields, never on their names: the quantizer
configuration, the artifact contract (I/O dtypes) and the manifest all come from the recipe. Float regions are the
deploy form's own declaration (``egeunet.export.deploy.FLOAT_MODULES``), so a rewrite of the deploy form cannot
silently quantize what must stay float.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

DTYPES = ("float32", "float16", "int8")
SCALES = ("none", "calibration", "fine-tuning")


@dataclass(frozen=True)
class Recipe:
    """One artifact's numerics: weight, activation and I/O dtypes, float regions, and the source of its scales."""

    name: str  # the artifact's variant name, used in its file name: fp32, fp16, int8, int8-dynamic, int8-io
    precision: str  # the gate family: fp32, fp16 or int8
    weights: str = "float32"
    activations: str = "float32"
    io: str = "float32"  # int8: quantized input (uint8 pixels when preprocessing is baked) and output
    float_regions: tuple[str, ...] = ()  # deploy-form module classes whose ops stay float
    int8_ops: tuple[str, ...] = ()  # when set, only these op types compute in int8 (the rest stays float)
    scales: str = "none"  # none (float), calibration (post-training), fine-tuning (quantization-aware)
    method: str = ""  # the converter and quantizer route, in words
    optional: bool = False  # a failed gate is reported (not kept) without failing the export run

    def __post_init__(self) -> None:
        for what, value, allowed in (("weights", self.weights, DTYPES), ("activations", self.activations, DTYPES),
                                     ("io", self.io, ("float32", "int8")), ("scales", self.scales, SCALES)):
            if value not in allowed:
                raise ValueError(f"recipe {self.name}: {what} {value!r} not in {allowed}")

    @property
    def static(self) -> bool:
        """Activations are integer, so their scales must be calibrated (or learned)."""
        return self.activations == "int8"

    @property
    def integer_only(self) -> bool:
        """Every op between the input and output computes on integers (what NPUs need)."""
        return self.static and not self.float_regions and not self.int8_ops

    def describe(self) -> dict:
        """The manifest record."""
        return {**asdict(self), "float_regions": list(self.float_regions), "int8_ops": list(self.int8_ops),
                "integer_only": self.integer_only}


def deploy_float_regions() -> tuple[str, ...]:
    """Qualified class names of the deploy form's float regions (what full-int8 recipes keep float)."""
    from egeunet.export.deploy import FLOAT_MODULES

    return tuple(f"{cls.__module__}.{cls.__qualname__}" for cls in FLOAT_MODULES)


def region_pattern(region: str) -> str:
    """Regex matching converter tensor names inside a module of class ``region`` (litert-torch writes each scope as
    ``package.module.Class_attribute``)."""
    import re

    return f".*{re.escape(region)}_.*"


def float_recipe(precision: str, method: str) -> Recipe:
    """fp32 (float weights) or fp16 (float16 weights, float compute) recipe."""
    return Recipe(precision, precision, weights="float16" if precision == "fp16" else "float32", method=method)


def budget_note(spec) -> str:
    """The method text's note on an int8 drift budget (empty without one)."""
    if spec.int8_drift_budget is None:
        return ""
    return (f"; the most sensitive layers kept float until mask agreement >= {spec.int8_drift_budget} "
            "on the calibration images")
