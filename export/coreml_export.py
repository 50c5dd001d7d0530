"""CoreML through coremltools: mlprogram for iOS16+ from the traced deploy form; fp32, fp16 and int8 weights.

fp16 computes in float16; int8 is the fp16 program with ``linear_quantize_weights`` on every weight
(``weight_threshold=0``: with the default threshold this tiny model keeps most weights in fp16).
Linux can convert and inspect a package but not run it: validation is structural there (spec loads,
inputs, outputs, op types, weight count) and the numeric part is skipped with its reason recorded.
"""
from __future__ import annotations

import platform
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from egeunet.export.base import Exporter, contract_json, deploy_key, register
from egeunet.export.capture import capture, example_input
from egeunet.export.recipes import Recipe, float_recipe
from egeunet.export.spec import ExportSpec, FormatConfig
from egeunet.quiet import held
from egeunet.runtime.contract import CONTRACT_KEY

CONFIG = FormatConfig(name="coreml", precisions=("fp32", "fp16", "int8"), uint8_input=False)
NEEDS_MACOS = "CoreML prediction needs macOS"


@held("coremltools")
def _convert(deploy, compute: str):
    """mlprogram of the deploy form with "fp32" or "fp16" compute; coremltools' import lines and redrawn pipeline
    bars are held back (``egeunet.quiet``)."""
    import coremltools as ct

    example = example_input(deploy, float_pixels=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # every size static; a baked form's stretch casts to float, so float pixel values capture the same graph
        exported = capture(deploy, float_pixels=True).run_decompositions({})
        precision = ct.precision.FLOAT32 if compute == "fp32" else ct.precision.FLOAT16
        return ct.convert(exported, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                          inputs=[ct.TensorType(name=CONFIG.input_name, shape=example.shape, dtype=np.float32)],
                          outputs=[ct.TensorType(name=CONFIG.output_name, dtype=np.float32)],
                          compute_precision=precision)


@held("coremltools")
def _int8_weights(model):
    """Per-channel symmetric int8 weights for every weight tensor (threshold 0: this model's tensors are small)."""
    import coremltools.optimize.coreml as cto

    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0))
    return cto.linear_quantize_weights(model, config)


@held("coremltools")
def _program(path: Path):
    """The package's MIL program proto (spec loads without macOS)."""
    import coremltools as ct

    return ct.utils.load_spec(str(path))


@register
class CoreMLExporter(Exporter):
    """CoreML exporter (mlpackage folders, written to a temporary name and renamed)."""

    config = CONFIG

    def __init__(self) -> None:
        self._fp16: dict[str, object] = {}  # deploy_key -> its fp16 program, shared by the int8 recipe of this run

    def _program_for(self, deploy, recipe: Recipe):
        if recipe.weights == "float32":
            return _convert(deploy, "fp32")
        key = deploy_key(deploy)
        if key not in self._fp16:
            self._fp16[key] = _convert(deploy, "fp16")
        return _int8_weights(self._fp16[key]) if recipe.weights == "int8" else self._fp16[key]

    def recipes(self, precision: str, spec: ExportSpec, int8_io: bool = False) -> list[Recipe]:
        if precision == "fp32":
            return [float_recipe("fp32", "mlprogram iOS16, float32 compute")]
        if precision == "fp16":
            return [Recipe("fp16", "fp16", weights="float16", activations="float16",
                           method="mlprogram iOS16, float16 compute")]
        return [Recipe("int8", "int8", weights="int8", activations="float16", method="mlprogram iOS16, float16 compute, "
                       "int8 per-channel weights (linear_quantize_weights, threshold 0)")]

    def export(self, deploy, spec: ExportSpec, out_path: Path, recipe: Recipe) -> Path:
        out_path = Path(out_path)
        model = self._program_for(deploy, recipe)
        model.user_defined_metadata[CONTRACT_KEY] = contract_json(spec, CONFIG, recipe)
        model.short_description = "EGE-UNet skin-lesion segmentation (egeunet export)"
        work = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
        try:
            model.save(str(work / out_path.name))
            if out_path.exists():
                shutil.rmtree(out_path)
            (work / out_path.name).rename(out_path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return out_path

    def describe(self, path: Path) -> dict:
        spec = _program(path)

        def io(features) -> list[dict]:
            from coremltools.proto import FeatureTypes_pb2 as ft

            return [{"name": f.name, "dtype": ft.ArrayFeatureType.ArrayDataType.Name(f.type.multiArrayType.dataType).lower(),
                     "shape": list(f.type.multiArrayType.shape)} for f in features]

        ops: Counter = Counter()
        for function in spec.mlProgram.functions.values():
            for block in function.block_specializations.values():
                for op in block.operations:
                    ops[op.type] += 1
        weights = ops.get("const", 0) + ops.get("constexpr_affine_dequantize", 0) + ops.get("constexpr_blockwise_shift_scale", 0)
        int8 = {k: v for k, v in ops.items() if k.startswith("constexpr")}
        return {"inputs": io(spec.description.input), "outputs": io(spec.description.output),
                "spec_version": spec.specificationVersion, "ops": sum(ops.values()), "op_counts": dict(ops.most_common()),
                "weight_tensors": weights,
                "quantization": {"int8_weight_ops": int8} if int8 else None,
                "contract": _contract(spec)}

    def validate(self, path: Path, reference: np.ndarray, held_out, spec: ExportSpec, recipe: Recipe) -> dict:
        """Structural checks everywhere; numbers through the CoreML runner on macOS, else skipped with the reason."""
        info = self.describe(path)
        problems = []
        if [i["name"] for i in info["inputs"]] != [CONFIG.input_name] or [o["name"] for o in info["outputs"]] != [CONFIG.output_name]:
            problems.append(f"inputs/outputs are {info['inputs']} / {info['outputs']}")
        if info["inputs"] and info["inputs"][0]["shape"] != spec.input_shape:
            problems.append(f"input shape {info['inputs'][0]['shape']} != {spec.input_shape}")
        if info["contract"] is None:
            problems.append("no egeunet contract in user_defined_metadata")
        if recipe.weights == "int8" and not info["quantization"]:
            problems.append("no int8 weights in the program")
        if not info["op_counts"].get("conv"):
            problems.append("no conv ops in the program")
        structural = {"ops": info["ops"], "weight_tensors": info["weight_tensors"], "problems": problems}
        if problems:
            return {"passed": False, "gate": "structural: " + "; ".join(problems), "structural": structural}
        if platform.system() != "Darwin":
            return {"passed": True, "gate": "structural only", "structural": structural, "numeric": "skipped",
                    "skipped_reason": NEEDS_MACOS}
        return {**super().validate(path, reference, held_out, spec, recipe), "structural": structural}


def _contract(spec) -> dict | None:
    import json

    text = spec.description.metadata.userDefined.get(CONTRACT_KEY)
    return json.loads(text) if text else None

