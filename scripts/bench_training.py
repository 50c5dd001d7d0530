"""Benchmark (not a test): training images/s and the fraction of time spent waiting for data.

On the synthetic sample at 256^2 with the paper's model and recipe, per device (CPU here, CUDA when
present): the input pipeline alone (cache -> stretch -> augment) and whole training steps, whose
batch preparation is timed separately. Prints a table and a JSON line.

    .venv/bin/python scripts/bench_training.py [--n 64] [--steps 24] [--threads 1] [--amp]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from egeunet import EGEUNet
from egeunet.data.augment import augment_batch
from egeunet.data.cache import open_cache
from egeunet.data.layouts import find_samples
from egeunet.data.synthetic import write_sample_dataset
from egeunet.training.batches import iterate
from egeunet.training.loop import LogitsModule, train_epoch
from egeunet.training.recipe import TrainConfig, build_optimizer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pipeline_rate(cached, rows: np.ndarray, batch: int, device: torch.device) -> float:
    """Images/s of the input pipeline alone: gather from the cache, stretch, augment on ``device``."""
    generator = torch.Generator().manual_seed(0)
    _sync(device)
    start = time.perf_counter()
    for _, x, y in iterate(cached, rows, batch, device):
        augment_batch(x, y, generator)
    _sync(device)
    return len(rows) / (time.perf_counter() - start)


def training_rate(cached, rows: np.ndarray, batch: int, device: torch.device, amp: bool) -> dict:
    """Images/s and data-wait fraction of full training steps (warm-up excluded)."""
    torch.manual_seed(0)
    net = EGEUNet().to(device)
    model = LogitsModule(net)
    optimizer, _ = build_optimizer(TrainConfig(data="", out=""), net, device)
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if amp else None
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    generator = torch.Generator().manual_seed(0)
    train_epoch(model, optimizer, scaler, cached, rows[: 3 * batch], batch, device, generator, dtype)  # warm-up
    _sync(device)
    stats = train_epoch(model, optimizer, scaler, cached, rows, batch, device, generator, dtype)
    _sync(device)
    return {"train_images_per_s": stats.images / stats.seconds, "data_wait": stats.data_wait}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="synthetic images to generate and cache")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=24, help="timed training steps per device")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--amp", action="store_true", help="autocast on CUDA")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_sample_dataset(Path(tmp) / "data", n=args.n, seed=0)
        cached = open_cache(find_samples(data), size=args.size, cache_dir=Path(tmp) / "cache")
        rows = np.resize(np.random.default_rng(0).permutation(len(cached)), args.steps * args.batch_size)
        for device in devices:
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x {torch.get_num_threads()} threads"
            pipe_rows = np.resize(rows, max(len(rows), 64 * args.batch_size))
            results.append({"device": name, "size": args.size, "batch": args.batch_size,
                            "amp": args.amp and device.type == "cuda",
                            "pipeline_images_per_s": pipeline_rate(cached, pipe_rows, args.batch_size, device),
                            **training_rate(cached, rows, args.batch_size, device, args.amp and device.type == "cuda")})
    print(f"{'device':<28}{'size':>6}{'batch':>7}{'pipeline img/s':>16}{'train img/s':>13}{'data wait':>11}")
    for r in results:
        print(f"{r['device']:<28}{r['size']:>6}{r['batch']:>7}{r['pipeline_images_per_s']:>16.1f}"
              f"{r['train_images_per_s']:>13.1f}{r['data_wait']:>11.1%}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
