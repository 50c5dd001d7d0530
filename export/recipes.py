"""Quantization as data: a ``Recipe`` says what one artifact computes in which type and where its scales come from.

Exporters build recipes (``Exporter.recipes``) and then act on their fields, never on their names: the quantizer
configuration, the artifact contract (I/O dtypes) and the manifest all come from the recipe. Float regions are the
deploy form's own declaration (``egeunet.model.deploy.FLOAT_MODULES``), so a rewrite of the deploy form cannot
silently quantize what must stay float.

An int8 recipe that misses its gate is tried in other forms, each a ``Rung`` of its ladder (``ladder``): full int8,
then the most sensitive layers kept float under rising drift budgets, then dynamic range; the integer-only recipe
(which a float layer would break) only changes its calibration. ``export.api`` walks the ladder and keeps the smallest
form that passes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from egeunet.export.spec import ExportSpec

DTYPES = ("float32", "float16", "int8")
SCALES = ("none", "calibration", "fine-tuning")
RANGES = ("", "running-min-max", "moving-average")  # static TFLite: how calibration pools each image's extremes


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
    ranges: str = ""  # static TFLite: running-min-max or moving-average of per-image extremes ("": the quantizer's)
    method: str = ""  # the converter and quantizer route, in words
    optional: bool = False  # a failed gate is reported (not kept) without failing the export run
    forms: tuple[str, ...] = ()  # the int8 ladder forms (``Rung.name``) its exporter builds; (): every form
    # fp16 with float32 compute: regex (fullmatch) over the names of the Conv2d modules, in the deploy form its format
    # converts, whose weights the file stores rounded to float16 (its gate's reference rounds the same); None: not known
    float16_weights: str | None = None

    def __post_init__(self) -> None:
        for what, value, allowed in (("weights", self.weights, DTYPES), ("activations", self.activations, DTYPES),
                                     ("io", self.io, ("float32", "int8")), ("scales", self.scales, SCALES),
                                     ("ranges", self.ranges, RANGES)):
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
                "forms": list(self.forms), "integer_only": self.integer_only}


def deploy_float_regions() -> tuple[str, ...]:
    """Qualified class names of the deploy form's float regions (what full-int8 recipes keep float)."""
    from egeunet.model.deploy import FLOAT_MODULES

    return tuple(f"{cls.__module__}.{cls.__qualname__}" for cls in FLOAT_MODULES)


def region_pattern(region: str) -> str:
    """Regex matching converter tensor names inside a module of class ``region`` (litert-torch writes each scope as
    ``package.module.Class_attribute``)."""
    import re

    return f".*{re.escape(region)}_.*"


def float_recipe(precision: str, method: str, float16_weights: str | None = None) -> Recipe:
    """fp32 (float weights) or fp16 (float16 weights, float compute: ``float16_weights`` says which) recipe."""
    fp16 = precision == "fp16"
    return Recipe(precision, precision, weights="float16" if fp16 else "float32", method=method,
                  float16_weights=float16_weights if fp16 else None)


def budget_note(spec) -> str:
    """The method text's note on an int8 drift budget (empty without one)."""
    if spec.int8_drift_budget is None:
        return ""
    return (f"; the most sensitive layers kept float until mask agreement >= {spec.int8_drift_budget} "
            "on the calibration images")


DEFAULT_AGREEMENT = 0.99  # the agreement keep-float budgets step up from when the int8 gate sets none


@dataclass(frozen=True)
class Rung:
    """One form an int8 recipe may take on its ladder: how the recipe and the spec change (the exporter acts on
    the changed fields as on any recipe)."""

    name: str  # full, keep-float, dynamic (int8 forms); moving-average (another integer-only calibration)
    what: str  # the form in words, added to the method text of the forms that change the recipe
    disagreement_share: float | None = None  # keep-float: the budget leaves this share of the gate's disagreement
    dynamic: bool = False  # int8 weights, float compute (float I/O)
    ranges: str | None = None  # the recipe's calibration ranges in this form
    grows: bool = False  # each step keeps more float, so a later form may be smaller: the walk goes on past a pass

    def applies(self, recipe: Recipe) -> bool:
        """Whether the recipe's exporter builds this form (``Recipe.forms``) and it keeps what the recipe promises its
        users: dynamic range has no int8 I/O."""
        return (not recipe.forms or self.name in recipe.forms) and not (self.dynamic and recipe.io == "int8")

    def budget(self, spec: "ExportSpec") -> float | None:
        """keep-float: the drift budget on the calibration images (at least the user's ``--int8-drift-budget``)."""
        if self.disagreement_share is None:
            return spec.int8_drift_budget
        gate = spec.gates.get("int8")
        base = gate.min_agreement if gate is not None and gate.min_agreement is not None else DEFAULT_AGREEMENT
        return round(max(1 - self.disagreement_share * (1 - base), spec.int8_drift_budget or 0.0), 6)

    def form(self, recipe: Recipe, spec: "ExportSpec") -> tuple[Recipe, "ExportSpec"]:
        """The recipe and spec of this form (the first rung of a ladder changes nothing)."""
        budget = None if recipe.integer_only else self.budget(spec)  # a float layer is not integer-only
        if self.dynamic:
            recipe = replace(recipe, activations="float32", io="float32", float_regions=(), int8_ops=(),
                             scales="none", ranges="", method=self.what)
        elif self.disagreement_share is not None:
            recipe = replace(recipe, method=f"{recipe.method}; {self.what}, budget {budget:g}")
        elif self.ranges is not None:
            recipe = replace(recipe, ranges=self.ranges, method=f"{recipe.method}; {self.what}")
        return recipe, spec.with_(int8_drift_budget=budget)


KEEP_FLOAT = "the most int8-sensitive convolutions kept float until mask agreement with the float graph on the " \
             "calibration images reaches the drift budget"
# int8 with float regions (ONNX QDQ convolutions, full-int8 TFLite): each keep-float rung halves the disagreement
# its budget allows, so a form that misses the held-out gate by calibration-vs-held-out noise gets a stricter search
INT8_LADDER = (
    Rung("full", "every quantizable op in int8"),
    *(Rung("keep-float", KEEP_FLOAT, disagreement_share=share, grows=True) for share in (0.5, 0.25, 0.125)),
    Rung("dynamic", "dynamic range: int8 per-channel weights, float compute and I/O", dynamic=True),
)
# integer-only (NPUs): a float layer would break the promise, so its forms differ only in calibration
INTEGER_LADDER = (
    Rung("full", "running min/max calibration ranges"),
    Rung("moving-average", "calibration ranges as the moving average of per-image extremes (clips rare outliers)",
         ranges="moving-average"),
)
AS_BUILT = (Rung("as-built", "the recipe as it is"),)  # float, weights-only and dynamic recipes: no ladder
INT8_RECIPES = ("ladder", "full", "keep-float", "dynamic")  # egeunet export --int8-recipe


def ladder(recipe: Recipe, choice: str = "ladder") -> tuple[Rung, ...]:
    """The forms ``recipe`` is tried in, in order, until one passes its gate; ``choice`` (``--int8-recipe``) other
    than "ladder" keeps only that form (a ladder without it, the integer-only one, keeps its first form)."""
    if not recipe.static:
        return AS_BUILT
    rungs = tuple(r for r in (INTEGER_LADDER if recipe.integer_only else INT8_LADDER) if r.applies(recipe))
    if choice == "ladder":
        return rungs
    return tuple(r for r in rungs if r.name == choice) or rungs[:1]
