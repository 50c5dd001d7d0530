"""Shared fixtures: the authors' reference checkpoint and small perturbed models."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE_DIR = SHARED / "spec" / "official-reference"


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Commands under test may call torch.set_num_threads; keep that from leaking into later tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The authors' best.pth and reference.npz (shipped beside the repository in shared/)."""
    if not (REFERENCE_DIR / "best.pth").is_file():
        pytest.fail(f"reference checkpoint missing at {REFERENCE_DIR}")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def light_checkpoint(tmp_path_factory) -> Callable[[int], Path]:
    """``light_checkpoint(size)``: ``test_export.light_training(size=size)`` saved as a checkpoint, trained once per size
    per session, so the export modules that start from this model (tests/test_export*.py, tests/test_onnx_*.py) share it.
    One thread: faster than two on a busy 2-core machine."""
    made: dict[int, Path] = {}

    def checkpoint(size: int) -> Path:
        if size not in made:
            from egeunet import save_checkpoint
            from test_export import light_training

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                model = light_training(size=size)
            finally:
                torch.set_num_threads(threads)
            made[size] = tmp_path_factory.mktemp(f"light{size}") / "model.pt"
            save_checkpoint(made[size], model, size)
        return made[size]

    return checkpoint


@pytest.fixture(scope="session")
def executorch_export(light_checkpoint, tmp_path_factory) -> tuple[Path, dict]:
    """``light_checkpoint(64)`` exported to ExecuTorch fp32 and full-int8 .pte once per session, with test_export's
    gates and images: (folder, manifest). Its int8 export takes minutes, so tests/test_executorch.py and
    test_export.py's per-format checks read this one export instead of making one each."""
    from egeunet.export import ExportSpec, export_all
    from test_export import N_CALIB, N_HELD, SIZE, TEST_GATES

    out = tmp_path_factory.mktemp("executorch")
    return out, export_all(light_checkpoint(SIZE), out, spec=ExportSpec(gates=TEST_GATES, int8_recipe="full"),
                           formats="executorch", precisions="fp32,int8", n_calib=N_CALIB, n_held=N_HELD,
                           golden=False, progress=False)


def perturb_(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Move every tensor off its initial value, so tests see trained-like weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model
