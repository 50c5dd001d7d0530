"""The shape every format module shares (export, validate, describe), the artifact contract, the registry."""
from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from egeunet.preprocess import PREPROCESSING
from egeunet.errors import EGEUNetError
from egeunet.export.spec import ExportSpec, FormatConfig, Variant

CONTRACT_KEY = "egeunet"  # metadata key holding the contract JSON in every artifact
FORMATS: dict[str, "Exporter"] = {}
_FORMAT_MODULES = ("egeunet.export.onnx_export", "egeunet.export.tflite_export", "egeunet.export.coreml_export")


def register(cls: type["Exporter"]) -> type["Exporter"]:
    """Class decorator adding one instance of a format's exporter under ``cls.config.name``."""
    FORMATS[cls.config.name] = cls()
    return cls


def _load_formats() -> None:
    for module in _FORMAT_MODULES:
        importlib.import_module(module)  # light: heavy libraries are imported inside functions


def list_formats() -> list[str]:
    """Names of every export format."""
    _load_formats()
    return list(FORMATS)


def get_format(name: str) -> "Exporter":
    """The exporter of a format; one-line error listing the valid names for an unknown one."""
    _load_formats()
    if name not in FORMATS:
        raise EGEUNetError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return FORMATS[name]


def contract(spec: ExportSpec, config: FormatConfig, variant: Variant) -> dict:
    """What an app must know to use the artifact: size, layout, dtypes, preprocessing, threshold."""
    pixels = "uint8" if config.uint8_input else "float32"
    input_dtype = pixels if spec.bake_preprocess else "int8" if variant.int8_io else "float32"
    return {
        "format": "egeunet-contract",
        "version": 1,
        "input_name": config.input_name,
        "output_name": config.output_name,
        "input_size": spec.size,
        "layout": spec.layout,
        "input_dtype": input_dtype,
        "output_dtype": "int8" if variant.int8_io else "float32",
        "baked_preprocess": spec.bake_preprocess,
        "preprocessing": {**PREPROCESSING, "layout": f"{spec.layout} {input_dtype}",
                          "stretch": "done by the graph" if spec.bake_preprocess else PREPROCESSING["stretch"]},
        "threshold": PREPROCESSING["threshold"],
        "precision": variant.precision,
        "variant": variant.name,
    }


def contract_json(spec: ExportSpec, config: FormatConfig, variant: Variant) -> str:
    """The contract as compact JSON, the form stored in artifact metadata."""
    return json.dumps(contract(spec, config, variant), separators=(",", ":"), sort_keys=True)


class Exporter(ABC):
    """One format: ``variants`` per precision, ``export`` one variant, ``validate`` it, ``describe`` a file."""

    config: FormatConfig

    @abstractmethod
    def variants(self, precision: str, spec: ExportSpec) -> list[Variant]:
        """Artifacts this format builds for one precision (TFLite int8 is two: dynamic-range and full)."""

    @abstractmethod
    def export(self, deploy, spec: ExportSpec, out_path: Path, variant: Variant) -> Path:
        """Convert the deploy form (``egeunet.export.deploy``) to ``out_path`` (written atomically)."""

    @abstractmethod
    def describe(self, path: Path) -> dict:
        """Inputs, outputs (names, shapes, dtypes), op counts and quantisation details read from the file."""

    def validate(self, path: Path, reference: np.ndarray, held_out, spec: ExportSpec, variant: Variant) -> dict:
        """Run the artifact through its runner on held-out images and compare with PyTorch."""
        from egeunet.benchmark.runners import open_runner
        from egeunet.export.validate import compare

        runner = open_runner(path, threads=1)
        probs = np.stack([runner.predict_image(image) for image in held_out.images])
        return compare(probs, reference, held_out.masks, variant.precision, spec.gates)

    def check_precision(self, precision: str) -> None:
        """One-line error when this format cannot build ``precision``."""
        if precision not in self.config.precisions:
            raise EGEUNetError(f"format {self.config.name} does not support precision {precision!r}; "
                               f"choose from {', '.join(self.config.precisions)}")
