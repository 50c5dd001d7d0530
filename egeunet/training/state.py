"""Everything ``--resume`` needs, kept plain (tensors, numbers, lists, dicts) so weights_only loading works.

last.pt holds the model like any egeunet checkpoint plus a ``resume`` section: optimizer, scheduler
and GradScaler states, the global random states (python, numpy, torch CPU and CUDA), the epoch,
the best validation mIoU so far and the log history. The epoch's shuffle is seeded by (seed, epoch)
and each process's augmentation generator by (seed, epoch, rank) at the epoch's start, so neither
needs storing: a resumed run, on every DDP rank, draws exactly what the uninterrupted run would.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egeunet.checkpoint import read_checkpoint
from egeunet.errors import EGEUNetError
from egeunet.training.recipe import RESUME_KEYS, TrainConfig


def rng_state() -> dict[str, Any]:
    """The global random states as plain values."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned (CUDA states only where CUDA is present)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_section(optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
                   epoch: int, best_miou: float, best_epoch: int, history: list[dict]) -> dict[str, Any]:
    """The ``resume`` section of last.pt after ``epoch`` completed epochs."""
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_state(),
        "epoch": epoch,
        "best_miou": best_miou,
        "best_epoch": best_epoch,
        "history": history,
    }


def load_resume(path: Path, config: TrainConfig) -> dict[str, Any]:
    """Read last.pt and check it was made with the same settings; returns the whole checkpoint dict."""
    ckpt = read_checkpoint(path)
    if "resume" not in ckpt or "training" not in ckpt:
        raise EGEUNetError(f"{path}: not a resumable training checkpoint (no resume state)")
    saved, now = ckpt["training"]["settings"], config.to_dict()
    for key in RESUME_KEYS:
        if saved.get(key) != now[key]:
            raise EGEUNetError(f"--resume: {path} was trained with {key}={saved.get(key)}, not {now[key]}; "
                               "use the same settings (only --epochs may change)")
    return ckpt


def restore(ckpt: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            scaler: torch.amp.GradScaler) -> dict[str, Any]:
    """Load weights and every training state from a last.pt dict; returns its ``resume`` section."""
    state = ckpt["resume"]
    model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state
