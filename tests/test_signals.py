"""SIGTERM is handled like Ctrl-C: a benchmark's timing child dies with it and its temporary folder goes."""
from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from egeunet import EGEUNet, save_checkpoint


def _children(pid: int) -> list[int]:
    """Every descendant process of ``pid`` (from /proc)."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
                frontier.append(int(stat.parent.name))
    return found


def test_sigterm_stops_the_benchmark_and_its_timing_child(tmp_path):
    from egeunet.data import write_sample_dataset

    torch.manual_seed(0)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, EGEUNet().eval(), 64)
    data = write_sample_dataset(tmp_path / "data", 2, seed=1)
    before = set(Path(tempfile.gettempdir()).glob("egeunet-probe-*"))
    proc = subprocess.Popen([sys.executable, "-m", "egeunet.cli", "benchmark", str(ckpt), "--data", str(data),
                             "--split", "all", "--runs", "100000", "--warmup", "0", "--out", str(tmp_path / "report")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not _children(proc.pid):
        time.sleep(0.1)  # the probe child is timing 100,000 runs
    children = _children(proc.pid)
    assert children, "the timing child never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert "terminated" in proc.stderr.read()
    time.sleep(0.5)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
             and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    assert not alive, f"orphaned children: {alive}"
    assert set(Path(tempfile.gettempdir()).glob("egeunet-probe-*")) == before
