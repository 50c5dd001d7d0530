"""Whole-model check of the int8 simulation against the real integer-only TFLite, on a checkpoint's own images.

    python scripts/qat_fidelity.py CKPT --data DIR [--n-calib 64] [--n-held N] [--threads 1] [--reference-kernels]

Calibration and held-out images are the export's (``export.data.split_sets``: the first --n-calib images of the train
part of the checkpoint's recorded split, the test part held out). Prints mask agreement and |dprob| of the simulation
against the TFLite, and each one's agreement with the float model, as JSON.
"""
from __future__ import annotations

import argparse
import json

import torch

from egeunet.checkpoint import load_model
from egeunet.training.dataset import recorded_split
from egeunet.export.data import split_sets
from egeunet.export.qat_fidelity import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--n-calib", type=int, default=64)
    parser.add_argument("--n-held", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reference-kernels", action="store_true",
                        help="also run the TFLite with its reference kernels (the floor of two real int8 runs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, meta = load_model(args.model, with_meta=True)
    split = recorded_split(args.model, args.data)
    if split is None:
        raise SystemExit(f"{args.model}: no recorded split for {args.data}: pass --data the folder it was trained on")
    calib, held = split_sets(args.data, split, int(meta.get("input_size", 256)), args.n_calib, args.n_held)
    summary = measure(model, calib.images, held.images,
                      reference_kernels=args.reference_kernels).summary()
    print(json.dumps({"calibration": calib.source, "held_out": held.source, **summary}, indent=1))


if __name__ == "__main__":
    main()
