"""The run folder's records: best.pt, last.pt (with the resume state), the epoch log and test_metrics.json.

Only the main process writes them, each atomically, in an order that survives a kill at any point:
best.pt, then last.pt (whose history is the log's source of truth), then the log files.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from egeunet.atomic import write_bytes_atomic
from egeunet.checkpoint import save_checkpoint
from egeunet.training.log import epoch_row, write_log
from egeunet.training.loop import EpochStats
from egeunet.training.state import resume_section


@dataclass
class RunRecords:
    """Selection state (best validation mIoU and its epoch), the log rows, and where the files go."""

    run_dir: Path
    size: int
    training: dict[str, Any]  # the checkpoints' ``training`` section
    history: list[dict[str, Any]] = field(default_factory=list)
    best_miou: float = -1.0
    best_epoch: int = 0

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    def resume_from(self, state: dict[str, Any]) -> int:
        """Take history and best from a last.pt ``resume`` section; returns the epochs already done."""
        self.history, self.best_miou, self.best_epoch = state["history"], state["best_miou"], state["best_epoch"]
        return state["epoch"]

    def end_epoch(self, epoch: int, lr: float, loss: float, images: int, stats: EpochStats, val: dict[str, Any],
                  net: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                  scaler: torch.amp.GradScaler) -> dict[str, Any]:
        """Select on validation mIoU, write best.pt (if better), last.pt and the log; returns the epoch's row."""
        is_best = val["miou"] > self.best_miou
        if is_best:
            self.best_miou, self.best_epoch = val["miou"], epoch
            save_checkpoint(self.best_path, net, self.size, training=self.training, metrics=val, epoch=epoch)
        self.history.append(epoch_row(epoch, lr, loss, val, stats.seconds, images, stats.data_wait, is_best))
        resume = resume_section(optimizer, scheduler, scaler, epoch, self.best_miou, self.best_epoch, self.history)
        save_checkpoint(self.last_path, net, self.size, training=self.training, metrics=val, epoch=epoch, resume=resume)
        write_log(self.run_dir, self.history)
        return self.history[-1]

    def write_test(self, metrics: dict[str, Any]) -> None:
        """test_metrics.json: best.pt scored once on the test split."""
        report = {"model": str(self.best_path.resolve()), "epoch": self.best_epoch, "split": "test",
                  "split_file": self.training["split_file"], **metrics}
        write_bytes_atomic(self.run_dir / "test_metrics.json", (json.dumps(report, indent=1) + "\n").encode())
