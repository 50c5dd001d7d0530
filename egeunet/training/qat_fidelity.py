"""How faithful the int8 fake quantization (``FakeQuantEGEUNet``) is to the real integer-only TFLite export.

Both are built from one checkpoint and calibrated on the same images: the TFLite through the exporter's own code
path (deploy form, litert-torch conversion, ai-edge-quantizer's static int8 recipe with the ``int8-integer`` rules),
the simulation with ``FakeQuantEGEUNet.calibrate``. Both are run on the same held-out images and compared with each
other and with the float model: if the simulation does not predict the artifact, fine-tuning on it cannot fix it.
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
    """Probabilities N x S x S of the float model, the simulation and the real integer-only TFLite."""

    float_probs: np.ndarray
    simulated: np.ndarray
    tflite: np.ndarray
    tflite_bytes: bytes

    def summary(self) -> dict[str, float]:
        """Simulation vs TFLite (mask agreement, max and mean |dprob|), and each against the float model."""
        diff = np.abs(self.simulated.astype(np.float64) - self.tflite)
        return {"images": int(len(self.tflite)),
                "sim_vs_tflite_agreement": compare(self.simulated, self.tflite).agreement,
                "sim_vs_tflite_max_abs_dprob": float(diff.max()),
                "sim_vs_tflite_mean_abs_dprob": float(diff.mean()),
                "sim_vs_float_agreement": compare(self.simulated, self.float_probs).agreement,
                "tflite_vs_float_agreement": compare(self.tflite, self.float_probs).agreement}


def integer_only_tflite(model: EGEUNet, calibration: np.ndarray) -> tuple[bytes, "object"]:
    """(flatbuffer, its StaticQuantizer) of the integer-only int8 export of ``model`` calibrated on ``calibration``
    (uint8 N x S x S x 3), built by the TFLite exporter's own functions, float I/O, untrimmed."""
    from egeunet.export import get_format, tflite_export
    from egeunet.export.data import ImageSet
    from egeunet.export.deploy import deploy_form
    from egeunet.export.spec import ExportSpec

    size = int(calibration.shape[1])
    images = ImageSet(calibration, None, tuple(str(i) for i in range(len(calibration))), "fidelity calibration")
    spec = ExportSpec(size=size, calibration=images)
    exporter = get_format("tflite")
    recipe = next(r for r in exporter.recipes("int8", spec) if r.name == "int8-integer")
    work = tempfile.mkdtemp(prefix="egeunet-fidelity-")
    fp32 = os.path.join(work, "fp32.tflite")
    Path(fp32).write_bytes(exporter._fp32_bytes(deploy_form(model, size)))
    quantizer = tflite_export.StaticQuantizer(fp32, recipe, spec)
    return quantizer.build(), quantizer


def measure(model: EGEUNet, calibration: np.ndarray, held: np.ndarray) -> Fidelity:
    """Build both from ``model`` on the uint8 ``calibration`` images and run both on the uint8 ``held`` images."""
    from egeunet.preprocess import preprocess
    from egeunet.runtime.runners.litert_runner import LiteRTRunner
    from egeunet.export.base import contract
    from egeunet.export.tflite_export import CONFIG
    from egeunet.training.qat import FakeQuantEGEUNet

    buf, quantizer = integer_only_tflite(model, calibration)
    runner = LiteRTRunner(Path(quantizer.fp32_path), content=buf,
                          contract=contract(quantizer.spec, CONFIG, quantizer.recipe))
    tflite = runner.io.output(runner.run_raw(runner.io.images_input(held)))[:, 0]
    size = int(calibration.shape[1])
    sim = FakeQuantEGEUNet(model.eval())
    sim.calibrate(torch.from_numpy(preprocess(calibration, size)))
    x = torch.from_numpy(preprocess(held, size))
    with torch.no_grad():
        simulated = np.concatenate([sim.eval()(x[i:i + 8])[:, 0].numpy() for i in range(0, len(x), 8)])
        float_probs = np.concatenate([model.eval()(x[i:i + 8])[:, 0].numpy() for i in range(0, len(x), 8)])
    return Fidelity(float_probs, simulated, tflite, buf)
