"""The export manifest: one record per artifact (file, hash, recipe, I/O, quantisation, validation) plus versions."""
from __future__ import annotations

import json
from pathlib import Path

from egeunet.atomic import atomic_write
from egeunet.runtime.artifacts import MANIFEST

GOLDEN_FILES = {
    "index.json": "size, threshold, photos, and per artifact its I/O contract (layout, dtypes, int8 scale/zero point)",
    "NAME.png": "the raw RGB photo at its own size",
    "NAME.input.npy": "egeunet.preprocess of the photo: float32 1 x 3 x S x S",
    "ARTIFACT/NAME.in.npy": "the artifact's input tensor exactly as fed (layout, dtype, quantised)",
    "ARTIFACT/NAME.out.npy": "the artifact's raw output tensor",
    "ARTIFACT/NAME.prob.npy": "probabilities float32 S x S",
    "ARTIFACT/NAME.mask.png": "0/255 mask at the photo's size (threshold 0.5)",
    "ARTIFACT/NAME.overlay.png": "the mask drawn over the photo",
}


def write_manifest(out: Path, manifest: dict) -> Path:
    """Write ``out/manifest.json`` atomically."""
    path = Path(out) / MANIFEST
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1) + "\n"))
    return path
