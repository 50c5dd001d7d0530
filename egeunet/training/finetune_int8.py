"""Quantization-aware fine-tuning of a trained checkpoint for the integer-only int8 export (``egeunet finetune-int8``).

The student is ``FakeQuantEGEUNet`` (int8 rounding where the integer-only TFLite rounds), the teacher the original
fp32 model. Loss: ``truth`` x the paper's deep-supervision BCE + Dice against the masks, plus ``distill`` x BCE of the
student's final logit against the teacher's probabilities (or its masks, ``distill_target="masks"``), which keeps the
masks the gate compares with the original. After
every epoch the student's ranges are calibrated as the export calibrates them (min-max over the first
``n_calib`` training images) and it is scored on the validation part against the original: mask agreement and pooled
IoU change. best.pt is the epoch (0 = the untouched weights) that passes the int8 gate on validation with the highest
agreement; best.pt and last.pt are plain EGE-UNet checkpoints (``egeunet export`` takes them unchanged), written
atomically, last.pt with everything ``--resume`` needs to continue exactly. The split is the original model's
recorded one when it was trained on the same data, so fine-tuning never sees its held-out test images.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from egeunet.accuracy import Gate, compare
from egeunet.atomic import write_bytes_atomic
from egeunet.checkpoint import load_model, read_checkpoint, save_checkpoint
from egeunet.data.augment import augment_batch
from egeunet.data.splits import save_split
from egeunet.errors import EGEUNetError
from egeunet.losses import deep_supervision_loss
from egeunet.model import EGEUNet, check_input_size
from egeunet.progress import progress
from egeunet.runtime.artifacts import file_digest
from egeunet.training.batches import epoch_order, iterate, load_batch
from egeunet.training.dataset import SplitData, check_parts, choose_split, open_split_data, recorded_split, split_hash
from egeunet.training.distributed import resolve_device
from egeunet.training.qat import FakeQuantEGEUNet
from egeunet.training.state import rng_state, set_rng_state

GATE = Gate(min_agreement=0.99, max_iou_drop_points=0.5)  # the int8 gate the export and benchmark apply
RESUME_KEYS = ("model_sha256", "size", "batch_size", "lr", "weight_decay", "truth", "distill", "distill_target",
               "n_calib", "seed")
DISTILL_TARGETS = ("probs", "masks")


@dataclass
class FinetuneConfig:
    """One fine-tuning run: the trained checkpoint, its data, the run folder and the recipe (constant AdamW rate)."""

    model: str
    data: str
    out: str
    epochs: int = 3
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-2
    truth: float = 0.0
    distill: float = 1.0
    distill_target: str = "probs"
    n_calib: int = 64
    size: int | None = None  # default: the checkpoint's input size
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    threads: int | None = None
    workers: int | None = None
    cache_dir: str | None = None
    progress: bool = True

    def settings(self, model_sha256: str, size: int) -> dict[str, Any]:
        """The checkpoint's record of the settings, with the original model's hash and the resolved size."""
        return {**asdict(self), "model_sha256": model_sha256, "size": size}


@dataclass
class FinetuneResult:
    """What the run produced: the run folder, best.pt and its epoch and validation comparison."""

    run_dir: Path
    best_path: Path
    best_epoch: int
    best: dict[str, Any]


def _check(config: FinetuneConfig) -> None:
    for name in ("epochs", "batch_size", "n_calib", "threads", "workers"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise EGEUNetError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if config.distill_target not in DISTILL_TARGETS:
        raise EGEUNetError(f"--distill-target must be one of {', '.join(DISTILL_TARGETS)}, got {config.distill_target!r}")
    if config.truth == 0 and config.distill == 0:
        raise EGEUNetError("--truth and --distill are both 0: nothing to fine-tune toward (set one above 0)")
    for name in ("lr", "truth", "distill", "weight_decay"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0) or (name == "lr" and value == 0):
            raise EGEUNetError(f"--{name.replace('_', '-')} must be a finite number above 0, got {value}")


def _resume_checkpoint(config: FinetuneConfig, run_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """last.pt when resuming (same settings, only --epochs may change); refuses to overwrite an existing run."""
    last = run_dir / "last.pt"
    if not config.resume:
        if last.exists():
            raise EGEUNetError(f"{run_dir} already holds a run (last.pt): pass --resume to continue it, or another --out")
        return None
    if not last.is_file():
        raise EGEUNetError(f"--resume: {last} not found (start without --resume)")
    ckpt = read_checkpoint(last)
    saved = ckpt.get("training", {}).get("finetune_int8")
    if "resume" not in ckpt or not saved:
        raise EGEUNetError(f"{last}: not a resumable finetune-int8 checkpoint (no resume state)")
    for key in RESUME_KEYS:
        if saved.get(key) != settings[key]:
            what = "the original model's content" if key == "model_sha256" else f"{key}={saved.get(key)}, not {settings[key]}"
            raise EGEUNetError(f"--resume: {last} was fine-tuned with {what}; use the same model and settings "
                               "(only --epochs may change)")
    return ckpt


def _split(config: FinetuneConfig, run_dir: Path, resumed: bool) -> tuple[dict[str, list[str]], str]:
    """The split (resumed run: its split.json; else the model's recorded split for this data, or the seeded one)."""
    source = str(run_dir / "split.json") if resumed else recorded_split(config.model, config.data)
    return choose_split(config.data, source, config.seed), source or "split"


class Validator:
    """Validation images with the original model's probabilities, computed once; scores a student against them."""

    def __init__(self, data: SplitData, teacher: EGEUNet, batch_size: int, device: torch.device) -> None:
        self.data, self.rows, self.batch_size, self.device = data, data.parts["val"], batch_size, device
        self.reference, self.truth = self._probabilities(teacher)

    def _probabilities(self, net: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
        probs, truth = [], []
        with torch.no_grad():
            for _, x, y in iterate(self.data.cached, self.rows, self.batch_size, self.device):
                probs.append(net(x)[:, 0].cpu().numpy())
                truth.append(y[:, 0].cpu().numpy())
        return np.concatenate(probs), np.concatenate(truth)

    def score(self, student: FakeQuantEGEUNet) -> dict[str, Any]:
        """Agreement and IoU change of the student's (int8-simulated) masks against the original's, and the verdict."""
        probs, _ = self._probabilities(student.eval())
        comparison = compare(probs, self.reference, self.truth)
        summary = comparison.summary()
        verdict = GATE.check(comparison)
        return {"agreement": summary["agreement"], "iou": summary["iou_artifact"],
                "iou_reference": summary["iou_reference"], "iou_drop_points": summary["iou_drop_points"],
                "mean_abs_dprob": summary["mean_abs_dprob"], "passed": verdict.passed}


def _selection_key(row: dict[str, Any]) -> tuple[bool, float, float]:
    """Order of log rows for best.pt: passing the int8 gate on validation, then agreement, then the smaller IoU drop."""
    return (bool(row["val_passed"]), float(row["val_agreement"]), -float(row["val_iou_drop_points"]))


def _train_epoch(student: FakeQuantEGEUNet, teacher: EGEUNet, optimizer: torch.optim.Optimizer, data: SplitData,
                 config: FinetuneConfig, epoch: int, device: torch.device) -> float:
    """One pass over the training part: the paper's loss on the int8-simulated logits plus distillation."""
    order = epoch_order(data.parts["train"], config.seed, epoch)
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([config.seed, epoch]).generate_state(1)[0]))
    student.train()
    loss_sum, images = 0.0, 0
    with progress(total=math.ceil(len(order) / config.batch_size), desc=f"epoch {epoch}/{config.epochs}",
                  unit="batch", leave=False, disable=not config.progress) as bar:
        for _, x, y in iterate(data.cached, order, config.batch_size, device):
            x, y = augment_batch(x, y, generator)
            with torch.no_grad():
                target = teacher(x)
                if config.distill_target == "masks":
                    target = (target >= 0.5).to(target.dtype)
            final, heads = student.forward_logits(x)
            loss = config.truth * deep_supervision_loss(final, heads, y) if config.truth else 0.0
            if config.distill:
                loss = loss + config.distill * F.binary_cross_entropy_with_logits(final, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(x)
            images += len(x)
            bar.update(1)
    return loss_sum / max(images, 1)


def _write_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    write_bytes_atomic(run_dir / "log.json", (json.dumps(history, indent=1) + "\n").encode())


def _row(epoch: int, loss: float | None, val: dict[str, Any], seconds: float, best: bool) -> dict[str, Any]:
    return {"epoch": epoch, "train_loss": None if loss is None else round(loss, 6),
            **{f"val_{k}": round(v, 6) if isinstance(v, float) else v for k, v in val.items()},
            "seconds": round(seconds, 3), "best": best}


def finetune_int8(config: FinetuneConfig) -> FinetuneResult:
    """Fine-tune ``config.model`` for the integer-only int8 export; writes best.pt, last.pt, log.json, split.json."""
    start = time.perf_counter()
    _check(config)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    original, meta = load_model(config.model, with_meta=True)
    size = int(config.size or meta.get("input_size", 256))
    try:
        check_input_size(size, size)
    except ValueError as exc:
        raise EGEUNetError(f"--size {size}: {exc}") from None
    run_dir = Path(config.out)
    settings = config.settings(file_digest(config.model)[1], size)  # a resumed run must start from the same model
    ckpt = _resume_checkpoint(config, run_dir, settings)
    state = ckpt["resume"] if ckpt else None
    if state and state["epoch"] >= config.epochs:
        best = state["history"][state["best_epoch"]]
        print(f"{run_dir}: this run is already finished ({state['epoch']} of {config.epochs} epochs done, best epoch "
              f"{state['best_epoch']}: val agreement {best['val_agreement']:.4%}, IoU change "
              f"{-best['val_iou_drop_points']:+.2f} points); pass a larger --epochs to fine-tune longer")
        return FinetuneResult(run_dir, run_dir / "best.pt", state["best_epoch"], best)

    split, source = _split(config, run_dir, resumed=ckpt is not None)
    if ckpt and split_hash(split) != ckpt["training"]["split_hash"]:
        raise EGEUNetError(f"--resume: the split in {source} is not the one {run_dir / 'last.pt'} was tuned on")
    save_split(run_dir / "split.json", split)
    data = open_split_data(config.data, split, size, source, cache_dir=config.cache_dir, workers=config.workers)
    check_parts(data, source)

    student = FakeQuantEGEUNet(original).to(device)
    teacher = original.to(device).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(student.net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    calib_rows = data.parts["train"][: config.n_calib]
    calib_images, _ = load_batch(data.cached, calib_rows, device)
    validator = Validator(data, teacher, 2 * config.batch_size, device)
    training = {"finetune_int8": settings, "original_model": str(Path(config.model).resolve()),
                "original_training": meta.get("training"), "data": str(Path(config.data).resolve()),
                "split_file": str((run_dir / "split.json").resolve()), "split_hash": data.split_hash,
                "images": {part: int(len(rows)) for part, rows in data.parts.items()}, "device": str(device)}

    def save(path: Path, epoch: int, val: dict[str, Any], **extra: Any) -> None:
        save_checkpoint(path, student.plain(), size, training=training, metrics=val, epoch=epoch, **extra)

    if state:
        student.net.load_state_dict(ckpt["state_dict"])
        student.load_quantizer_state(state["quantizers"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        history, best_epoch, done = state["history"], state["best_epoch"], state["epoch"]
    else:
        student.calibrate(calib_images)  # epoch 0: the trained weights, post-training quantized
        val = validator.score(student)
        history, best_epoch, done = [_row(0, None, val, time.perf_counter() - start, True)], 0, 0
        save(run_dir / "best.pt", 0, val)
    say = tqdm.write
    counts = " / ".join(f"{n} {part}" for part, n in training["images"].items())
    say(f"fine-tuning {config.model} for integer-only int8 at {size}px on {counts} images, epochs {done + 1}.."
        f"{config.epochs} (epoch 0, post-training: val agreement {history[0]['val_agreement']:.4%}, IoU change "
        f"{-history[0]['val_iou_drop_points']:+.2f} points)")

    for epoch in range(done + 1, config.epochs + 1):
        tic = time.perf_counter()
        loss = _train_epoch(student, teacher, optimizer, data, config, epoch, device)
        student.calibrate(calib_images)
        val = validator.score(student)
        row = _row(epoch, loss, val, time.perf_counter() - tic, False)
        row["best"] = is_best = _selection_key(row) > _selection_key(history[best_epoch])
        if is_best:
            best_epoch = epoch
            save(run_dir / "best.pt", epoch, val)
        history.append(row)
        resume = {"optimizer": optimizer.state_dict(), "rng": rng_state(), "epoch": epoch, "best_epoch": best_epoch,
                  "history": history, "quantizers": student.quantizer_state()}
        save(run_dir / "last.pt", epoch, val, resume=resume)
        _write_log(run_dir, history)
        say(f"epoch {epoch}/{config.epochs}  loss {loss:.4f}  val agreement {val['agreement']:.4%}  IoU change "
            f"{-val['iou_drop_points']:+.2f} points  {'passes' if val['passed'] else 'fails'} the int8 gate"
            + ("  best" if is_best else ""))
    _write_log(run_dir, history)
    best = history[best_epoch]
    seconds = time.perf_counter() - start
    say(f"done: best epoch {best_epoch} (val agreement {best['val_agreement']:.4%}, IoU change "
        f"{-best['val_iou_drop_points']:+.2f} points); {seconds:.0f} s; files in {run_dir} (best.pt, last.pt, "
        "log.json, split.json); export best.pt with `egeunet export`")
    return FinetuneResult(run_dir, run_dir / "best.pt", best_epoch, best)
