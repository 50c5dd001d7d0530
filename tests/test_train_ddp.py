"""DistributedDataParallel with two CPU processes on gloo: both ranks end with the same weights."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from egeunet import EGEUNet
from egeunet.checkpoint import read_checkpoint
from egeunet.data.synthetic import write_sample_dataset
from egeunet.training import TrainConfig, train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    """What torchrun would set up, then the library's train(); each rank saves its final weights."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    result = train(TrainConfig(data=data, out=out, epochs=1, batch_size=2, size=64, channels=(4, 8, 12, 16, 24, 32),
                               threads=1, progress=False, cache_dir=str(Path(out).parent / "cache")))
    torch.save(result.model.state_dict(), Path(out).parent / f"rank{rank}.pt")


def test_two_process_gloo_training_keeps_ranks_in_sync(tmp_path):
    data = write_sample_dataset(tmp_path / "data", n=12, seed=5)
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, _free_port(), str(data), str(out)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = read_checkpoint(out / "last.pt")
    assert saved["training"]["world_size"] == 2
    assert all(torch.equal(saved["state_dict"][k], rank0[k]) for k in rank0)
    torch.manual_seed(0)
    initial = EGEUNet(channels=(4, 8, 12, 16, 24, 32)).state_dict()
    assert not all(torch.equal(initial[k], rank0[k]) for k in rank0)  # it did train
    assert (out / "test_metrics.json").is_file()
