"""How the normalisations' numerics change full-int8 TFLite: float norms, int8 norms (integer-only), int16 norms.

    python scripts/integer_only_variants.py CKPT [--size 256] [--n-calib 16]

Each variant is built from the same fp32 conversion and calibration, then scored (mask agreement) against the fp32
graph on the calibration images: a quick look at what each choice costs, not a gate.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

from egeunet.accuracy import compare
from egeunet.checkpoint import load_model
from egeunet.export import get_format, tflite_export
from egeunet.export.data import synthetic_sets
from egeunet.model.deploy import deploy_form
from egeunet.quiet import held
from egeunet.export.recipes import region_pattern
from egeunet.export.spec import ExportSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--n-calib", type=int, default=16)
    args = parser.parse_args()
    from ai_edge_quantizer import recipe as recipes

    calib, _ = synthetic_sets(args.size, args.n_calib, 1)
    spec = ExportSpec(size=args.size, calibration=calib)
    exporter = get_format("tflite")
    by_name = {r.name: r for r in exporter.recipes("int8", spec)}
    with tempfile.TemporaryDirectory() as work:
        fp32 = Path(work) / "fp32.tflite"
        fp32.write_bytes(exporter._fp32_bytes(deploy_form(load_model(args.model), args.size)))
        mixed = tflite_export.StaticQuantizer(str(fp32), by_name["int8"], spec)
        integer = tflite_export.StaticQuantizer(str(fp32), by_name["int8-integer"], spec)
        reference = mixed.probabilities(fp32.read_bytes())
        a16 = copy.deepcopy(recipes.static_wi8_ai8()[0])
        a16["op_config"]["activation_tensor_config"].update(num_bits=16, symmetric=True)
        int16_rules = tflite_export._rules(by_name["int8-integer"], spec) + [
            {**a16, "regex": region_pattern(r)} for r in by_name["int8"].float_regions]
        variants = {"float norms (int8 recipe)": lambda: mixed.build(),
                    "int8 norms (integer-only)": lambda: integer.build(),
                    "int16 norms": lambda: bytes(integer._quantizer(int16_rules).quantize(
                        integer.calibration, enable_progress_bar=False, enable_progress_report=False).quantized_model)}
        for name, build in variants.items():
            try:
                with held("ai-edge-quantizer"):
                    buf = build()
                print(f"{name}: {len(buf):,} bytes, mask agreement {compare(mixed.probabilities(buf), reference).agreement:.5f} "
                      f"on {len(calib)} calibration images")
            except Exception as exc:  # a kernel that cannot run the variant is a result
                print(f"{name}: fails: {str(exc).splitlines()[0][:160]}")


if __name__ == "__main__":
    main()
