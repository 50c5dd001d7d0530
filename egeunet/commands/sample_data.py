"""`egeunet sample-data`: write a synthetic dermoscopy dataset in the ISIC 2018 layout, for trying the tool offline."""
from __future__ import annotations

import argparse
import time

HELP = "write synthetic dermoscopy-like images with exact masks (ISIC 2018 layout) for offline trials"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: output folder, number of images, seed."""
    parser.add_argument("--out", required=True, metavar="DIR", help="new or empty folder to write into")
    parser.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed; image i depends only on (seed, i) (default 0)")


def run(args: argparse.Namespace) -> int:
    """Write the dataset and print a one-line summary."""
    from egeunet.commands import checks
    from egeunet.data.synthetic import write_sample_dataset  # heavy imports only when the command runs

    checks.positive("--n", args.n)
    checks.output_dir("--out", args.out)
    start = time.perf_counter()
    out = write_sample_dataset(args.out, args.n, args.seed)
    print(f"wrote {args.n} synthetic images and masks (seed {args.seed}, ISIC 2018 layout) to {out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
