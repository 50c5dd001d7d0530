"""`egeunet finetune-int8`: quantization-aware fine-tuning of a trained checkpoint for the integer-only int8 export."""
from __future__ import annotations

import argparse

HELP = ("fine-tune a trained checkpoint with int8 fake quantization (norm ops included) so that its integer-only "
        "int8 export keeps the fp32 masks (best.pt, last.pt, log.json, split.json in --out)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The checkpoint, its data, the run folder and the fine-tuning recipe."""
    from egeunet.commands import checks
    from egeunet.commands.train import add_run_options

    parser.add_argument("model", metavar="MODEL", help="trained egeunet checkpoint (.pt), e.g. RUN_DIR/best.pt")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder; the model's recorded split is "
                        "used when it was trained on it (its test images stay unseen), else the seeded 7:3 split")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder for best.pt, last.pt, log and split")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (default 3)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    checks.add_alias(parser, "--batch-size", "--batch", deprecated=False, type=int)
    parser.add_argument("--lr", type=float, default=1e-4, help="constant AdamW learning rate (default 1e-4)")
    parser.add_argument("--truth", type=float, default=0.0, help="weight of the paper's loss (deep-supervision BCE + "
                        "Dice against the ground-truth masks) added to the distillation; default 0: the gate compares "
                        "with the original model, not the ground truth")
    parser.add_argument("--distill", type=float, default=1.0, help="weight of the BCE toward the original model's "
                        "output (default 1.0; 0 = ground truth only)")
    parser.add_argument("--distill-target", type=str.lower, choices=("probs", "masks"), default="probs",
                        help="distil toward the "
                        "original's probabilities or its masks (probabilities thresholded at 0.5); default probs")
    parser.add_argument("--n-calib", type=int, default=64, help="training images the int8 ranges are calibrated on "
                        "after each epoch, as the export calibrates them (default 64)")
    parser.add_argument("--size", type=int, help="input size, multiple of 32 (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (when the model has none), order and "
                        "augmentation")
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    """Check the options and folders before any work, then fine-tune."""
    from egeunet.commands import checks
    from egeunet.training.finetune_int8 import FinetuneConfig, finetune_int8

    for option in ("--epochs", "--batch", "--n-calib", "--workers", "--threads"):
        checks.positive(option, getattr(args, option[2:].replace("-", "_")))
    checks.size("--size", args.size)
    checks.output_dir("--out", args.out)
    checks.cache_dir(args.cache_dir)
    config = FinetuneConfig(
        model=args.model, data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch, lr=args.lr,
        truth=args.truth, distill=args.distill, distill_target=args.distill_target,
        n_calib=args.n_calib, size=args.size, seed=args.seed, device=args.device,
        resume=args.resume, threads=args.threads, workers=args.workers, cache_dir=args.cache_dir,
        progress=not args.no_progress)
    finetune_int8(config)
    return 0
