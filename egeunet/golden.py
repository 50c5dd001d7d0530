"""Golden vectors beside exported artifacts: what a phone or browser app's own processing must reproduce.

``write_golden(out_dir)`` runs every ``.tflite`` and ``.onnx`` artifact in ``out_dir`` on a few
held-out synthetic photos through the Python pipeline (``egeunet.preprocess``, the artifact's own
contract in ``egeunet.export.io``, ``egeunet predict``'s mask and overlay) and writes ``out_dir/golden/``:

- ``index.json``: size, threshold, the photos and, per artifact, its I/O contract (layout, baked
  preprocessing, dtypes, int8 scale/zero point) and the folder holding its vectors;
- per photo ``NAME.png`` (RGB, its own size) and ``NAME.input.npy`` (canonical float32 1 x 3 x S x S);
- per artifact and photo, in ``ARTIFACT/``: ``NAME.in.npy`` (the input tensor exactly as fed: layout,
  dtype, quantised), ``NAME.out.npy`` (the raw output tensor), ``NAME.prob.npy`` (S x S float32),
  ``NAME.mask.png`` (0/255 at the photo's size) and ``NAME.overlay.png``.

The Android core (JUnit), the native LiteRT check and the web demo test read these files.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GOLDEN_SEED = 6006  # synthetic photos never used for calibration (those come from seed 0)


def _raw_run(runner, x: np.ndarray) -> np.ndarray:
    """The artifact's raw output tensor for input ``x`` (already in its layout and dtype)."""
    if hasattr(runner, "session"):  # ONNX Runtime
        return runner.session.run(None, {runner.input_name: x})[0]
    runner.interpreter.set_tensor(runner.input["index"], x)
    runner.interpreter.invoke()
    return runner.interpreter.get_tensor(runner.output["index"])


def _io_record(runner, raw_in: np.ndarray, raw_out: np.ndarray) -> dict:
    io = runner.io
    return {"runtime": runner.runtime, "size": io.size, "layout": io.layout, "baked_preprocess": io.baked,
            "input_dtype": raw_in.dtype.name, "input_shape": list(raw_in.shape),
            "input_scale": io.input_scale, "input_zero_point": io.input_zero_point,
            "output_dtype": raw_out.dtype.name, "output_shape": list(raw_out.shape),
            "output_scale": io.output_scale, "output_zero_point": io.output_zero_point}


def write_golden(out_dir: str | Path, n_images: int = 3, seed: int = GOLDEN_SEED, threshold: float = 0.5) -> Path:
    """Write ``out_dir/golden/`` for every .tflite and .onnx artifact in ``out_dir``; returns that folder."""
    import cv2

    from egeunet.benchmark.runners import open_runner
    from egeunet.postprocess import mask_at_size, overlay
    from egeunet.data.synthetic import generate_sample
    from egeunet.errors import EGEUNetError
    from egeunet.preprocess import preprocess

    out_dir = Path(out_dir)
    artifacts = sorted(p for p in out_dir.iterdir() if p.suffix in (".tflite", ".onnx"))
    if not artifacts:
        raise EGEUNetError(f"{out_dir}: no .tflite or .onnx artifacts to write golden vectors for")
    golden = out_dir / "golden"
    golden.mkdir(exist_ok=True)
    photos = {f"photo{i}": generate_sample(seed, i)[0] for i in range(n_images)}
    runners = {path: open_runner(path) for path in artifacts}
    size = next(iter(runners.values())).io.size

    index = {"size": size, "threshold": threshold, "images": [], "artifacts": []}
    for name, photo in photos.items():
        cv2.imwrite(str(golden / f"{name}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        np.save(golden / f"{name}.input.npy", preprocess(photo, size))
        index["images"].append({"name": name, "height": photo.shape[0], "width": photo.shape[1],
                                "image": f"{name}.png", "input": f"{name}.input.npy"})
    for path, runner in runners.items():
        folder = golden / path.name
        folder.mkdir(exist_ok=True)
        record = None
        for name, photo in photos.items():
            raw_in = runner.io.image_input(photo)
            raw_out = _raw_run(runner, raw_in)
            prob = runner.io.output(raw_out)[0, 0]
            mask = mask_at_size(prob, *photo.shape[:2], threshold)
            np.save(folder / f"{name}.in.npy", raw_in)
            np.save(folder / f"{name}.out.npy", raw_out)
            np.save(folder / f"{name}.prob.npy", prob)
            cv2.imwrite(str(folder / f"{name}.mask.png"), mask)
            cv2.imwrite(str(folder / f"{name}.overlay.png"), cv2.cvtColor(overlay(photo, mask), cv2.COLOR_RGB2BGR))
            record = record or _io_record(runner, raw_in, raw_out)
        index["artifacts"].append({"file": path.name, "folder": path.name, **record})
    (golden / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return golden
