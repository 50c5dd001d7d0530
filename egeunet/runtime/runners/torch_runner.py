"""PyTorch eager runner: egeunet checkpoints and the authors' .pth files, on CPU or CUDA."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from egeunet.checkpoint import load_model
from egeunet.errors import EGEUNetError
from egeunet.runtime.contract import ArtifactIO
from egeunet.runtime.runners.base import Runner, register


@register
class TorchRunner(Runner):
    """Eager PyTorch; ``device`` is "cpu", "cuda" or "mps"; ``threads`` sets torch's intra-op threads."""

    runtime = "pytorch"

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__(path, threads, device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EGEUNetError(f"{path}: device {device!r} requested but CUDA is not available here")
        if threads:
            torch.set_num_threads(threads)
        self.model, meta = load_model(path, with_meta=True)
        self.model.to(device)
        self.io = ArtifactIO(size=int(meta.get("input_size", 256)))

    @torch.inference_mode()
    def run_raw(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        return self.model(t).float().cpu().numpy()
