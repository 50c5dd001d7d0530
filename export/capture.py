"""The graph capture every format is lowered from: ``torch.export`` of a deploy form at its example input.

ONNX (``torch.onnx.export`` of the ExportedProgram, the exporter built on torch.export) and CoreML (coremltools'
ExportedProgram path) convert the program this returns; litert-torch takes the module and runs the same
``torch.export`` itself (its converter has no public entry for a program: re-exporting ``program.module()`` would
lose the module scopes its layer names, and so the keep-float recipes, are matched by).
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a capture runs: format modules stay light to import
    import torch

BATCH = "batch"  # the name of the dynamic batch dimension in files that have one


def example_input(form: torch.nn.Module, float_pixels: bool = False) -> torch.Tensor:
    """The deploy form's example input; ``float_pixels``: a baked form's uint8 pixels as float (the stretch casts
    to float first, so the captured graph is the same, for converters that take float inputs only)."""
    example = form.example_input()
    return example.float() if float_pixels else example


def capture(form: torch.nn.Module, dynamic_batch: bool = False,
            float_pixels: bool = False) -> torch.export.ExportedProgram:
    """``torch.export`` of ``form`` (a deploy form, eval mode) with every size static, or the batch dimension of
    its input and output dynamic (``dynamic_batch``, ONNX files: ONNX Runtime runs them on any batch)."""
    import torch

    example = example_input(form, float_pixels)
    shapes = None
    if dynamic_batch:  # traced on two images: torch.export fixes a dimension whose example size is 1
        example, shapes = torch.cat([example, example]), ({0: torch.export.Dim(BATCH, min=1)},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(form, (example,), dynamic_shapes=shapes, strict=False)
