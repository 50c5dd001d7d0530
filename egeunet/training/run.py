"""``train(config)``: one full run from a dataset folder to best.pt, last.pt, logs and test metrics.

Order: settings and resume checks -> split -> the whole dataset decoded and validated -> epochs
(train, validate on val, checkpoint, log) -> the test split scored once with best.pt. Only the
main process writes files or prints; under torchrun every process trains its shard.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from egeunet.data.splits import save_split
from egeunet.errors import EGEUNetError
from egeunet.model import EGEUNet, EGEUNetConfig, check_input_size, variant_config
from egeunet.progress import progress
from egeunet.training import distributed
from egeunet.training.batches import epoch_order
from egeunet.training.dataset import SplitData, check_parts, choose_split, open_split_data, split_hash
from egeunet.training.evaluate import evaluate_rows, model_predictor, runner_predictor
from egeunet.training.loop import LogitsModule, train_epoch
from egeunet.training.recipe import TrainConfig, build_optimizer
from egeunet.training.records import RunRecords
from egeunet.training.state import load_resume, restore


@dataclass
class RunResult:
    """What a run produced: its files, the best validation mIoU and epoch, test metrics, time, final model."""

    run_dir: Path
    best_path: Path
    last_path: Path
    best_epoch: int
    best_miou: float
    test_metrics: dict[str, Any] | None
    seconds: float
    model: EGEUNet


def train(config: TrainConfig) -> RunResult:
    """Train EGE-UNet as ``config`` says (joining the torchrun process group if launched by torchrun)."""
    ctx, device = distributed.setup(config.device)
    try:
        return _run(config, ctx, device)
    finally:
        distributed.cleanup(ctx)


def _check(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Reject impossible settings early; returns the autocast dtype (None without --amp)."""
    for name in ("epochs", "batch_size", "t_max", "workers", "threads"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise EGEUNetError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    try:
        check_input_size(config.size, config.size)
    except ValueError as exc:
        raise EGEUNetError(f"--size {config.size}: {exc}") from None
    if not config.amp:
        return None
    if device.type != "cuda":
        raise EGEUNetError("--amp needs --device cuda (mixed precision is not used on CPU or MPS)")
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _augment_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of the augmentation generator for one epoch of one process."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _architecture(config: TrainConfig) -> EGEUNetConfig:
    """The variant's architecture (with ``channels`` overridden), checked before any data is read."""
    try:
        options = {"channels": tuple(config.channels)} if config.channels else {}
        return variant_config(config.variant, **options)
    except ValueError as exc:
        raise EGEUNetError(f"--variant/--channels: {exc}") from None


def _build_model(config: TrainConfig, arch: EGEUNetConfig) -> EGEUNet:
    """The seeded, freshly initialised network."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    return EGEUNet(arch)


def _open_data(config: TrainConfig, ctx: distributed.DistContext, split: dict, source: str) -> SplitData:
    """Decode and validate the dataset (the main process first, so the others find the cache built)."""
    kwargs = dict(cache_dir=config.cache_dir, skip_bad=config.skip_bad, workers=config.workers)
    if ctx.is_main:
        data = open_split_data(config.data, split, config.size, source, **kwargs)
    distributed.barrier(ctx)
    if not ctx.is_main:
        data = open_split_data(config.data, split, config.size, source, **kwargs)
    return data


def _resume_checkpoint(config: TrainConfig, run_dir: Path) -> dict | None:
    """last.pt when resuming; refuses to start over a run that exists, or to resume one that does not."""
    last = run_dir / "last.pt"
    if config.resume:
        if not last.is_file():
            raise EGEUNetError(f"--resume: {last} not found (start without --resume)")
        return load_resume(last, config)
    if last.exists():
        raise EGEUNetError(f"{run_dir} already holds a run (last.pt): pass --resume to continue it, or another --out")
    return None


def _run(config: TrainConfig, ctx: distributed.DistContext, device: torch.device) -> RunResult:
    start = time.perf_counter()
    amp_dtype = _check(config, device)
    arch = _architecture(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.out)
    split_path = run_dir / "split.json"
    ckpt = _resume_checkpoint(config, run_dir)
    test = _written_test(run_dir) if ckpt and ckpt["resume"]["epoch"] >= config.epochs else None
    if test:
        return _finished(config, arch, ckpt, test, run_dir, ctx, start)
    source = config.split_file or (str(split_path) if ckpt else None)
    split = choose_split(config.data, source, config.seed)
    if ckpt and split_hash(split) != ckpt["training"]["split_hash"]:
        raise EGEUNetError(f"--resume: the split in {source} is not the one {run_dir / 'last.pt'} was trained on")
    if ctx.is_main:
        save_split(split_path, split)
    data = _open_data(config, ctx, split, source or "split")
    check_parts(data, source or config.data)

    net = _build_model(config, arch).to(device)
    optimizer, scheduler = build_optimizer(config, net, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    records = RunRecords(run_dir, config.size, training={
        "settings": config.to_dict(), "data": str(Path(config.data).resolve()), "split_file": str(split_path.resolve()),
        "split_hash": data.split_hash, "seed": config.seed, "world_size": ctx.world_size, "device": str(device),
        "images": {part: int(len(rows)) for part, rows in data.parts.items()},
    })
    done = records.resume_from(restore(ckpt, net, optimizer, scheduler, scaler)) if ckpt else 0
    model = distributed.wrap(LogitsModule(net), ctx, device)
    say = tqdm.write if ctx.is_main else (lambda _: None)
    counts = " / ".join(f"{n} {part}" for part, n in records.training["images"].items())
    todo = f"epochs {done + 1}..{config.epochs}" if done < config.epochs else \
        f"all {done} epochs already done, only the test split is left to score"
    say(f"training {config.variant} at {config.size}px on {counts} images "
        f"({ctx.world_size} x {device.type}, batch {config.batch_size}), {todo}")

    for epoch in range(done + 1, config.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        order = epoch_order(data.parts["train"], config.seed, epoch, ctx.rank, ctx.world_size)
        generator = torch.Generator().manual_seed(_augment_seed(config.seed, epoch, ctx.rank))
        with progress(total=math.ceil(len(order) / config.batch_size), desc=f"epoch {epoch}/{config.epochs}",
                  unit="batch", leave=False, disable=not (config.progress and ctx.is_main)) as bar:
            stats = train_epoch(model, optimizer, scaler, data.cached, order, config.batch_size, device,
                                generator, amp_dtype, bar)
        scheduler.step()
        loss_sum, images = distributed.all_reduce_sum(
            ctx, torch.tensor([stats.loss_sum, stats.images], dtype=torch.float32, device=device)).tolist()
        if ctx.is_main:
            val = evaluate_rows(model_predictor(net), data.cached, data.parts["val"], 2 * config.batch_size, device)
            row = records.end_epoch(epoch, lr, loss_sum / images, int(images), stats, val, net, optimizer, scheduler,
                                    scaler)
            say(f"epoch {epoch}/{config.epochs}  loss {row['train_loss']:.4f}  lr {lr:.2e}  val mIoU {val['miou']:.4f}  "
                f"DSC {val['dsc']:.4f}  {row['images_per_s']:.1f} img/s  data wait {row['data_wait']:.0%}"
                + ("  best" if row["best"] else ""))
        distributed.barrier(ctx)

    test = _test(config, data, records) if ctx.is_main else None
    seconds = time.perf_counter() - start
    tested = f"test mIoU {test['miou']:.4f} DSC {test['dsc']:.4f} on {test['images']} images; " if test else "no test images; "
    say(f"done: best val mIoU {records.best_miou:.4f} at epoch {records.best_epoch}/{config.epochs}; {tested}"
        f"{f'{seconds:.0f} s' if seconds < 90 else f'{seconds / 60:.1f} min'}; files in {run_dir} (best.pt, last.pt, log.csv, log.json, split.json"
        + (", test_metrics.json)" if test else ")"))
    distributed.barrier(ctx)
    return RunResult(run_dir, records.best_path, records.last_path, records.best_epoch, records.best_miou, test,
                     seconds, net)


def _written_test(run_dir: Path) -> dict[str, Any] | None:
    """The run's test_metrics.json, or None when it is missing or unreadable (then the test is scored again)."""
    try:
        test = json.loads((run_dir / "test_metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return test if isinstance(test, dict) and "miou" in test else None


def _finished(config: TrainConfig, arch: EGEUNetConfig, ckpt: dict[str, Any], test: dict[str, Any], run_dir: Path,
              ctx: distributed.DistContext, start: float) -> RunResult:
    """A resumed run that has nothing left to do: say so and return what it produced, without reading data."""
    state = ckpt["resume"]
    if ctx.is_main:
        print(f"{run_dir}: this run is already finished ({state['epoch']} of {config.epochs} epochs done, best val "
              f"mIoU {state['best_miou']:.4f} at epoch {state['best_epoch']}, test mIoU {test['miou']:.4f}); "
              f"pass a larger --epochs to train longer")
    net = _build_model(config, arch)
    net.load_state_dict(ckpt["state_dict"])
    return RunResult(run_dir, run_dir / "best.pt", run_dir / "last.pt", state["best_epoch"], state["best_miou"], test,
                     time.perf_counter() - start, net)


def _test(config: TrainConfig, data: SplitData, records: RunRecords) -> dict[str, Any] | None:
    """Score best.pt once on the test split (never used for selection) and write test_metrics.json."""
    if not len(data.parts["test"]):
        return None
    from egeunet.runtime.runners import open_runner

    runner = open_runner(records.best_path, device=records.training["device"])
    metrics = evaluate_rows(runner_predictor(runner), data.cached, data.parts["test"], 2 * config.batch_size,
                            desc="test" if config.progress else None)  # the runner moves batches to its device
    records.write_test(metrics)
    return metrics
