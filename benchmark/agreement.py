"""The agreement matrix: every target's masks against every other's, fp32 PyTorch included, on the same images.

Agreement is the share of pixels whose mask decision (probability >= 0.5) is the same in both targets, pooled over
the N images, as ``egeunet.accuracy`` pools it for one artifact against the reference. The harness keeps each
target's masks as bool (1 byte a pixel: 64 KB per 256 x 256 image) while it sweeps, so the matrix needs no second run.
"""
from __future__ import annotations

import numpy as np

from egeunet.errors import EGEUNetError


def agreement_matrix(masks: dict[str, tuple[str, np.ndarray]]) -> dict:
    """Pairwise pooled mask agreement of {row name: (runtime, N x S x S bool masks)}: names, runtimes, the symmetric
    matrix (fractions, 1 on the diagonal), differing pixel counts, and the images and pixels each cell rests on."""
    names = list(masks)
    stacks = [np.asarray(m, bool) for _, m in masks.values()]
    shapes = {m.shape for m in stacks}
    if len(shapes) > 1:
        raise EGEUNetError(f"agreement matrix: targets' masks differ in shape {sorted(shapes)}; they must cover the "
                           "same images at the same size")
    shape = stacks[0].shape if stacks else (0, 0, 0)
    pixels = int(np.prod(shape))
    differing = np.zeros((len(names), len(names)), np.int64)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            differing[i, j] = differing[j, i] = np.count_nonzero(stacks[i] != stacks[j])
    return {"names": names, "runtimes": [runtime for runtime, _ in masks.values()],
            "agreement": (1 - differing / max(pixels, 1)).tolist(), "differing_pixels": differing.tolist(),
            "images": int(shape[0]), "image_size": list(shape[1:]), "pixels": pixels}


def percent(fraction: float, digits: int) -> str:
    """A fraction as a percent with ``digits`` decimals that never rounds a difference away: 0.99999 -> ">99.99"."""
    text = f"{100 * fraction:.{digits}f}"
    if fraction < 1 and float(text) >= 100:
        return f">{100 - 10 ** -digits:.{digits}f}"
    return "100" if fraction == 1 else text


def labels(matrix: dict) -> list[str]:
    """The matrix's target labels: each row name, with its runtime added when the name does not carry it."""
    return [name if "@" in name else f"{name} @{runtime}" for name, runtime in zip(matrix["names"], matrix["runtimes"])]
