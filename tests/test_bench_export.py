"""scripts/bench_export.py: a .pte gets the bare ExecuTorch predictor (a tiny .pte, made in seconds); --also refuses
files no runtime reads before the export starts."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_export.py"


def _bench():
    """The script as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_export", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pte_files_get_the_executorch_predictor(tmp_path: Path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1)).eval()
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    program = to_edge_transform_and_lower(torch.export.export(model, (torch.from_numpy(x),)),
                                          partitioner=[XnnpackPartitioner()]).to_executorch()
    path = tmp_path / "tiny.pte"
    path.write_bytes(program.buffer)
    bench = _bench()
    predict = next(make for _, suffix, factories in bench.RUNTIMES if suffix == ".pte"
                   for make in factories.values())(path)
    for image in (x, 2 * x):  # a second input: each call runs the program on its own input
        with torch.no_grad():
            np.testing.assert_allclose(predict(image), model(torch.from_numpy(image)).numpy(), atol=1e-5)


def test_also_refuses_a_file_no_runtime_reads(tmp_path: Path) -> None:
    wrong = tmp_path / "model.pt"
    wrong.write_bytes(b"")
    run = subprocess.run([sys.executable, str(SCRIPT), "--also", str(wrong), str(tmp_path / "missing.pte")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and f"--also {wrong}: not an existing .onnx, .tflite or .pte file" in run.stderr
