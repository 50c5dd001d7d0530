"""The run's per-epoch log, rewritten atomically as RUN_DIR/log.csv and RUN_DIR/log.json after every epoch."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from egeunet.atomic import write_bytes_atomic

COLUMNS = ("epoch", "lr", "train_loss", "val_miou", "val_dsc", "val_accuracy", "val_sensitivity",
           "val_specificity", "val_image_iou_mean", "seconds", "images_per_s", "data_wait", "best")


def write_log(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Write every row so far to log.csv (fixed columns) and log.json (a list of objects)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(run_dir / "log.csv", text.getvalue().encode())
    write_bytes_atomic(run_dir / "log.json", (json.dumps(rows, indent=1) + "\n").encode())


def epoch_row(epoch: int, lr: float, loss: float, val: dict[str, Any], seconds: float, images: int,
              data_wait: float, best: bool) -> dict[str, Any]:
    """One log row with the validation metrics as fractions, rounded for reading."""
    return {
        "epoch": epoch, "lr": lr, "train_loss": round(loss, 6),
        **{f"val_{k}": round(val[k], 6) for k in ("miou", "dsc", "accuracy", "sensitivity", "specificity",
                                                  "image_iou_mean")},
        "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 2) if seconds else 0.0,
        "data_wait": round(data_wait, 4), "best": best,
    }
