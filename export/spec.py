"""What an export is asked to produce: per-format config, validation gates per precision, the user's options."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from egeunet.accuracy import Gate
from egeunet.errors import EGEUNetError

if TYPE_CHECKING:
    from egeunet.export.data import ImageSet

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
MAX_SIZE = 2048  # 2048 x 2048 already needs gigabytes per activation map in this network


@dataclass(frozen=True)
class FormatConfig:
    """How egeunet exports one format: names, opset, supported precisions; the file facts (suffix, runtimes) are the
    format descriptor's (``egeunet.runtime.formats``), looked up by ``name``."""

    name: str
    precisions: tuple[str, ...]
    input_name: str = "image"
    output_name: str = "prob"
    opset: int | None = None
    uint8_input: bool = True  # False: a baked graph takes float32 pixel values (CoreML has no uint8 input)
    runtime_options: dict = field(default_factory=dict)  # what the runtime should be told when it loads the file
    float_form: str | None = None  # ``egeunet.model.deploy`` function giving the deploy form its float files convert

    @property
    def suffix(self) -> str:
        """The suffix of the files it writes."""
        from egeunet.runtime.formats import file_format

        return file_format(self.name).suffix

    @property
    def runtime(self) -> str:
        """The runtime its files are validated in: the format's default runtime."""
        from egeunet.runtime.formats import file_format

        return file_format(self.name).default_runtime


def default_gates() -> dict[str, Gate]:
    """The export gates per precision on held-out images (``export_all`` raises both max |dprob| limits to 4 x the
    model's own fp32 rounding, ``api.fp32_gate``).

    fp32: max |dprob| against the model in float64. fp16: mask agreement with fp32 PyTorch (how much fp16 changes the
    masks), and max |dprob| against what the file is meant to compute, the model with the file's own float16 weights
    (``Recipe.float16_weights``) in float64, with fp32's limit: rounding weights to float16 moves a trained model's
    steep boundary pixels by 6e-3 to 0.3 (the authors' weights), so a bound against fp32 fails correct files or
    passes broken ones. int8 is gated on agreement and the pooled-IoU drop: a confident model flips single boundary
    pixels, so max |dprob| is near 1 even when the masks are nearly identical.
    """
    return {"fp32": Gate(max_abs_dprob=1e-4), "fp16": Gate(min_agreement=0.999, max_abs_dprob=1e-4),
            "int8": Gate(min_agreement=0.99, max_iou_drop_points=0.5)}


@dataclass(frozen=True)
class ExportSpec:
    """Everything one export run was asked for, shared by every format."""

    size: int | None = None  # None: the checkpoint's own input size (``export_all`` fills it in); exporters need it set
    nhwc: bool = False
    bake_preprocess: bool = False
    calib_method: str = "minmax"
    gates: dict[str, Gate] = field(default_factory=default_gates)
    calibration: "ImageSet | None" = None
    int8_drift_budget: float | None = None  # int8: min mask agreement vs the float graph on calibration images
    int8_recipe: str = "ladder"  # int8: walk the ladder of forms (recipes.ladder) or build only the one named

    def __post_init__(self) -> None:
        if self.size is not None:
            check_size(self.size)
        if self.calib_method not in CALIBRATION_METHODS:
            raise EGEUNetError(f"unknown calibration method {self.calib_method!r}; choose from {', '.join(CALIBRATION_METHODS)}")
        if self.int8_drift_budget is not None and not 0 <= self.int8_drift_budget <= 1:
            raise EGEUNetError(f"--int8-drift-budget {self.int8_drift_budget} is not a fraction in [0, 1] "
                               "(mask agreement, e.g. 0.995)")
        from egeunet.export.recipes import INT8_RECIPES

        if self.int8_recipe not in INT8_RECIPES:
            raise EGEUNetError(f"unknown --int8-recipe {self.int8_recipe!r}; choose from {', '.join(INT8_RECIPES)}")

    @property
    def layout(self) -> str:
        """Tensor layout of the artifact's input and output."""
        return "NHWC" if self.nhwc else "NCHW"

    @property
    def input_shape(self) -> list[int]:
        """Input shape with batch 1 (graphs with a dynamic batch report -1 themselves)."""
        s = self.size
        return [1, s, s, 3] if self.nhwc else [1, 3, s, s]

    @property
    def output_shape(self) -> list[int]:
        """Output shape with batch 1."""
        s = self.size
        return [1, s, s, 1] if self.nhwc else [1, 1, s, s]

    def with_(self, **changes) -> "ExportSpec":
        """A copy with some fields changed."""
        return replace(self, **changes)


def check_size(size: int) -> None:
    """One-line error for an export size the network cannot take or that cannot fit in memory."""
    if size > MAX_SIZE:
        raise EGEUNetError(f"size {size} is larger than {MAX_SIZE}: the model was trained at 256 (use --size 256)")
    if size % 32 or size < 32:
        fix = max(32, round(size / 32) * 32)
        raise EGEUNetError(f"size {size} is not a multiple of 32: use {fix} (the paper uses 256)")


def parse_list(text: str | list[str], valid: tuple[str, ...], what: str) -> list[str]:
    """Comma-separated names -> list, one-line error naming the valid choices for an unknown one."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    bad = [n for n in names if n not in valid]
    if bad or not names:
        raise EGEUNetError(f"unknown {what} {bad[0] if bad else '(none given)'!r}; choose from {', '.join(valid)}")
    return list(dict.fromkeys(names))
