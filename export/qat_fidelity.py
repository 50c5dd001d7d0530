"""How faithful the int8 fake quantization (``FakeQuantEGEUNet``) is to the real integer-only TFLite export.

Both are built from one checkpoint and calibrated on the same images: the TFLite through the exporter's own code
path (deploy form, litert-torch conversion, ai-edge-quantizer's static int8 recipe with the ``int8-integer`` rules,
run by the LiteRT runner), the simulation with ``FakeQuantEGEUNet.calibrate``. Both run on the same held-out images
and are compared with each other and with the float model: fine-tuning on the simulation can only fix what it
predicts. ``scripts/qat_fidelity.py`` runs this on a checkpoint and its data.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from egeunet.accuracy import compare
from egeunet.model import EGEUNet


@dataclass
class Fidelity:
    """Probabilities N x S x S of the float model, the simulation and the real integer-only TFLite (and its bytes)."""

    float_probs: np.ndarray
    simulated: np.ndarray
    tflite: np.ndarray
    tflite_bytes: bytes
    tflite_reference_kernels: np.ndarray | None = None

    def summary(self) -> dict[str, float]:
        """Simulation vs TFLite (mask agreement, max and mean |dprob|), and each one's agreement with the float model."""
        diff = np.abs(self.simulated.astype(np.float64) - self.tflite)
        return {"images": int(len(self.tflite)),
                "sim_vs_tflite_agreement": compare(self.simulated, self.tflite).agreement,
                "sim_vs_tflite_max_abs_dprob": float(diff.max()),
                "sim_vs_tflite_mean_abs_dprob": float(diff.mean()),
                "sim_vs_float_agreement": compare(self.simulated, self.float_probs).agreement,
                "tflite_vs_float_agreement": compare(self.tflite, self.float_probs).agreement,
                **({} if self.tflite_reference_kernels is None else {
                    "tflite_vs_its_reference_kernels_agreement": compare(self.tflite_reference_kernels,
                                                                         self.tflite).agreement,
                    "sim_vs_tflite_reference_kernels_agreement": compare(self.simulated,
                                                                         self.tflite_reference_kernels).agreement})}


def reference_kernel_probabilities(buf: bytes, x: np.ndarray) -> np.ndarray:
    """Probabilities of a float-I/O flatbuffer on network inputs ``x`` (N x 3 x S x S) with TFLite's reference
    kernels instead of XNNPACK: two real int8 implementations of one graph, the floor any simulation can reach."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=buf, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    probs = []
    for image in x:
        interpreter.set_tensor(inp["index"], image[None].astype(np.float32))
        interpreter.invoke()
        probs.append(interpreter.get_tensor(out["index"]).reshape(x.shape[2], x.shape[3]))
    return np.stack(probs)


def _tflite_probabilities(model: EGEUNet, calibration: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, bytes]:
    """(probabilities on ``held``, flatbuffer) of the integer-only int8 TFLite of ``model`` calibrated on
    ``calibration``, built and run by the exporter's own functions (float I/O)."""
    from egeunet.export import get_format, tflite_export
    from egeunet.export.base import contract
    from egeunet.export.data import ImageSet
    from egeunet.model.deploy import deploy_form, for_litert
    from egeunet.export.spec import ExportSpec
    from egeunet.runtime.runners.litert_runner import LiteRTRunner

    size = int(calibration.shape[1])
    images = ImageSet(calibration, None, tuple(str(i) for i in range(len(calibration))), "fidelity calibration")
    spec = ExportSpec(size=size, calibration=images)
    exporter = get_format("tflite")
    recipe = next(r for r in exporter.recipes("int8", spec) if r.name == "int8-integer")
    with tempfile.TemporaryDirectory() as work:
        fp32 = os.path.join(work, "fp32.tflite")
        Path(fp32).write_bytes(exporter._fp32_bytes(for_litert(deploy_form(model, size))))
        buf = tflite_export.StaticQuantizer(fp32, recipe, spec).build()  # holds the quantizer's output itself
        problems = tflite_export.integer_only_problems(buf)
        if problems:
            raise RuntimeError(f"the int8-integer recipe did not give an integer-only graph: {problems[:3]}")
        runner = LiteRTRunner(Path(fp32), content=buf, contract=contract(spec, tflite_export.CONFIG, recipe))
        return runner.io.output(runner.run_raw(runner.io.images_input(held)))[:, 0], buf


def measure(model: EGEUNet, calibration: np.ndarray, held: np.ndarray, batch: int = 8,
            reference_kernels: bool = False) -> Fidelity:
    """Build both from ``model`` calibrated on uint8 ``calibration`` images (N x S x S x 3) and run both, and the
    float model, on the uint8 ``held`` images (and the TFLite with its reference kernels too when asked)."""
    from egeunet.preprocess import preprocess
    from egeunet.training.qat import FakeQuantEGEUNet

    model = model.eval()
    tflite, buf = _tflite_probabilities(model, calibration, held)
    size = int(calibration.shape[1])
    sim = FakeQuantEGEUNet(model)
    sim.calibrate(torch.from_numpy(preprocess(calibration, size)))
    sim.eval()
    x = torch.from_numpy(preprocess(held, size))
    with torch.no_grad():
        simulated = np.concatenate([sim(x[i:i + batch])[:, 0].numpy() for i in range(0, len(x), batch)])
        float_probs = np.concatenate([model(x[i:i + batch])[:, 0].numpy() for i in range(0, len(x), batch)])
    reference = reference_kernel_probabilities(buf, x.numpy()) if reference_kernels else None
    return Fidelity(float_probs, simulated, tflite, buf, reference)
