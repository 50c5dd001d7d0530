"""Run a predictor over rows of a cached split and score it with the paper protocol.

Shared by per-epoch validation, the test evaluation at the end of training and ``egeunet evaluate``,
so every number comes from the same loop. ``predict`` maps a float batch N x 3 x S x S on ``device``
(already min-max stretched) to probabilities N x 1 x S x S (numpy or torch).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from egeunet.data.cache import CachedSplit
from egeunet.metrics import SegmentationMeter
from egeunet.progress import progress
from egeunet.training.batches import iterate

Predict = Callable[[torch.Tensor], Any]


def evaluate_rows(predict: Predict, cached: CachedSplit, rows: np.ndarray, batch_size: int = 16,
                  device: torch.device | str = "cpu", desc: str | None = None) -> dict[str, Any]:
    """Pooled metrics, per-image means and the worst images of ``predict`` on ``rows`` (no bar when desc is None)."""
    meter = SegmentationMeter()
    with progress(total=len(rows), desc=desc, unit="img", disable=desc is None, leave=False) as bar:
        for batch_rows, x, y in iterate(cached, rows, batch_size, torch.device(device)):
            meter.update(predict(x), y, ids=[cached.ids[r] for r in batch_rows])
            bar.update(len(batch_rows))
    return meter.compute()


def model_predictor(net: torch.nn.Module) -> Predict:
    """``predict`` for an in-memory EGE-UNet: eval-mode forward without gradients."""

    @torch.inference_mode()
    def predict(x: torch.Tensor) -> torch.Tensor:
        return net.eval()(x)

    return predict


def runner_predictor(runner: Any) -> Predict:
    """``predict`` for an ``open_runner`` runner (PyTorch, ONNX Runtime, LiteRT, ...): numpy in, numpy out."""
    return lambda x: runner.predict(x.cpu().numpy())
