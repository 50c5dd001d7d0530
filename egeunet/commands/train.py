"""`egeunet train`: the paper's recipe on a dataset folder; multi-GPU with `torchrun --nproc_per_node N -m egeunet.cli train ...`."""
from __future__ import annotations

import argparse

HELP = "train EGE-UNet with the paper's recipe (best.pt, last.pt, logs, split and test metrics in --out)"


def _channels(text: str) -> tuple[int, ...]:
    """Parse --channels "8,16,24,32,48,64"."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected six comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, run folder, the recipe's knobs and the hardware options."""
    from egeunet.commands import checks

    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder (ISIC 2017/2018 release, "
                        "prepared train/val layout, or a folder from `egeunet sample-data`)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder for checkpoints, logs and split")
    parser.add_argument("--epochs", type=int, default=300, help="epochs (paper: 300)")
    parser.add_argument("--batch", type=int, default=8, help="batch per process (paper: 8)")
    checks.add_alias(parser, "--batch-size", "--batch", deprecated=False, type=int)
    parser.add_argument("--size", type=int, default=256, help="training and evaluation size, multiple of 32 (paper: 256)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (paper: 1e-3)")
    parser.add_argument("--t-max", type=int, default=50, help="cosine schedule period in epochs (paper: 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of split, initialisation, order and augmentation")
    parser.add_argument("--split-file", metavar="FILE", help="use this split.json instead of making the seeded 7:3 split")
    parser.add_argument("--variant", default="egeunet", type=str.lower,
                        help="Table 2 variant (default: egeunet, the full model)")
    parser.add_argument("--channels", type=_channels, help="override the six stage widths, e.g. 4,8,12,16,24,32")
    parser.add_argument("--amp", action="store_true", help="mixed precision on CUDA (bf16, or fp16 with loss scaling)")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable or inconsistent files (counted in one warning)")
    add_run_options(parser)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options every training run has (`train`, `finetune-int8`): device, resume, threads, cache, progress."""
    parser.add_argument("--device", default="cpu", type=str.lower, choices=("cpu", "cuda", "mps"),
                        help="training device")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly from its last.pt")
    parser.add_argument("--workers", type=int, help="threads decoding images into the cache (default: up to 8)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cache-dir", metavar="DIR", help="decoded-image cache (default: $EGEUNET_CACHE or ~/.cache/egeunet)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (epoch lines are still printed)")


def run(args: argparse.Namespace) -> int:
    """Check the options and output folders, build the config and train."""
    from egeunet.commands import checks
    from egeunet.training import TrainConfig, train

    checks.size("--size", args.size)
    checks.output_dir("--out", args.out)
    checks.cache_dir(args.cache_dir)

    config = TrainConfig(
        data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch, size=args.size, lr=args.lr,
        t_max=args.t_max, seed=args.seed, split_file=args.split_file, variant=args.variant, channels=args.channels,
        device=args.device, amp=args.amp, resume=args.resume, skip_bad=args.skip_bad, workers=args.workers,
        threads=args.threads, cache_dir=args.cache_dir, progress=not args.no_progress,
    )
    train(config)
    return 0
