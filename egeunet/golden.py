"""Golden vectors beside exported artifacts: what a phone or browser app's own processing must reproduce.

``write_golden(out_dir, artifacts)`` runs the given artifacts of the formats the demos run (``for_demos``: their
descriptors' ``golden``, ``.tflite`` and ``.onnx``; those the manifest lists) on a few
held-out synthetic photos through the Python pipeline (``egeunet.preprocess``, the artifact's own
contract in ``egeunet.runtime.contract``, ``egeunet predict``'s mask and overlay) and writes ``out_dir/golden/``:

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


def golden_formats() -> list[str]:
    """The formats the phone and web demos run (``FileFormat.golden`` in ``egeunet.runtime.formats``)."""
    from egeunet.runtime.formats import FORMATS

    return [f.name for f in FORMATS.values() if f.golden]


def for_demos(path: str | Path) -> bool:
    """Whether golden vectors are written for a file: its format is one the demos run."""
    from egeunet.runtime.formats import format_of

    fmt = format_of(path)
    return fmt is not None and fmt.golden


def _io_record(runner, raw_in: np.ndarray, raw_out: np.ndarray) -> dict:
    io = runner.io
    return {"runtime": runner.runtime, "size": io.size, "layout": io.layout, "baked_preprocess": io.baked,
            "input_dtype": raw_in.dtype.name, "input_shape": list(raw_in.shape),
            "input_scale": io.input_scale, "input_zero_point": io.input_zero_point,
            "output_dtype": raw_out.dtype.name, "output_shape": list(raw_out.shape),
            "output_scale": io.output_scale, "output_zero_point": io.output_zero_point}


def write_golden(out_dir: str | Path, artifacts: list[Path], n_images: int = 3, seed: int = GOLDEN_SEED,
                 threshold: float = 0.5) -> Path:
    """Write ``out_dir/golden/`` for the given artifacts the demos run (``for_demos``), replacing it whole; returns that
    folder."""
    import shutil
    import tempfile

    from egeunet.errors import EGEUNetError

    out_dir = Path(out_dir)
    artifacts = sorted(Path(p) for p in artifacts if for_demos(p))
    if not artifacts:
        raise EGEUNetError(f"{out_dir}: no {' or '.join(golden_formats())} artifacts to write golden vectors for")
    final = out_dir / "golden"
    work = Path(tempfile.mkdtemp(prefix=".golden-", dir=out_dir))  # complete before it replaces the old folder
    try:
        _write(work / "golden", artifacts, n_images, seed, threshold)
        if final.exists():
            final.rename(work / "old")
        (work / "golden").rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _write(golden: Path, artifacts: list[Path], n_images: int, seed: int, threshold: float) -> None:
    """The golden files of ``artifacts`` in ``golden``."""
    import cv2

    from egeunet.data.synthetic import generate_sample
    from egeunet.postprocess import mask_at_size, overlay
    from egeunet.preprocess import preprocess
    from egeunet.runtime.runners import open_runner

    golden.mkdir()
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
            raw_out = runner.run_raw(raw_in)
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
