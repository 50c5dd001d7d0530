"""Runtimes `executorch` and `executorch-arm64` on a small .pte, and `egeunet benchmark --etdump`.

The program is a 2-layer conv net at 64 px lowered whole to XNNPACK, with egeunet's contract as its constant method
`egeunet` (what the exporter writes), so it is made in seconds. `executorch-arm64` needs the kit of
scripts/setup_arm64.sh (the test command runs it): a missing kit fails with the runner's message, not a skip.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from egeunet.cli import main
from egeunet.runtime.contract import CONTRACT_KEY, contract_json, make_contract
from egeunet.runtime.runners import open_runner, runtimes_for

SIZE = 64
ARM_TOLERANCE = 1e-5  # ARM NEON and x86 AVX kernels of XNNPACK sum in different orders; measured 1.3e-6 at 256 px


class TwoConv(torch.nn.Module):
    """3 channels in, one probability per pixel out."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.b(torch.relu(self.a(x))))


def _pte(model: torch.nn.Module, path: Path, contract: str | None) -> Path:
    """``model`` at SIZE lowered to XNNPACK as a .pte, with ``contract`` as the constant method ``egeunet``."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(model, (torch.rand(1, 3, SIZE, SIZE),))
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                          constant_methods={CONTRACT_KEY: contract} if contract else None)
    path.write_bytes(lowered.to_executorch().buffer)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> SimpleNamespace:
    """The conv net as a .pte with a contract, the same without one, the net itself and two dataset images."""
    from egeunet.data import write_sample_dataset

    root = tmp_path_factory.mktemp("executorch")
    torch.manual_seed(0)
    model = TwoConv().eval()
    contract = contract_json(make_contract(input_name="x", output_name="y", size=SIZE, layout="NCHW",
                                           input_dtype="float32", output_dtype="float32", baked=False,
                                           precision="fp32", variant="test", integer_only=False))
    return SimpleNamespace(model=model, pte=_pte(model, root / "conv.pte", contract),
                           bare=_pte(model, root / "bare.pte", None), data=write_sample_dataset(root / "data", 2, seed=1))


def test_pte_runs_in_both_runtimes_executorch_first():
    assert runtimes_for("m.pte")[:1] == ["executorch"] and "executorch-arm64" in runtimes_for("m.pte")


def test_arm64_matches_x86_and_pytorch_and_reads_the_contract(files):
    x = np.random.default_rng(0).random((3, 3, SIZE, SIZE), dtype=np.float32)
    with torch.no_grad():
        want = files.model(torch.from_numpy(x)).numpy()
    x86 = open_runner(files.pte, "executorch")
    arm = open_runner(files.pte, "executorch-arm64")
    assert arm.io == x86.io and arm.io.contract and arm.io.size == SIZE
    on_x86, on_arm = x86.predict(x), arm.predict(x)
    assert on_arm.shape == on_x86.shape == (3, 1, SIZE, SIZE)
    assert np.abs(on_arm - on_x86).max() <= ARM_TOLERANCE
    assert np.abs(on_x86 - want).max() <= 1e-5
    assert len(arm.last_ms) == 3 and min(arm.last_ms) > 0
    info = arm.describe()
    assert info["emulated"] and info["executorch_version"] and info["emulator"].startswith("qemu-aarch64 ")


def test_arm64_without_contract_takes_the_programs_own_shape(files):
    arm = open_runner(files.bare, "executorch-arm64")
    assert not arm.io.contract and arm.input_size == SIZE and arm.in_shape == [1, 3, SIZE, SIZE]


def test_arm64_child_never_imports_torch(files):
    """The emulated runner needs no torch: its process runs the native program, not ExecuTorch's Python runtime."""
    code = ("import sys, numpy as np; from egeunet.runtime.runners import open_runner; "
            f"r = open_runner({str(files.pte)!r}, 'executorch-arm64'); "
            f"p = r.predict(np.zeros((1, 3, {SIZE}, {SIZE}), np.float32)); print(p.shape, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split()[-1] == "False", out.stderr[-500:]


def test_not_a_program_is_a_one_line_error(tmp_path):
    from egeunet.errors import EGEUNetError

    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(EGEUNetError, match=r"bad\.pte: not an ExecuTorch program"):
        open_runner(bad, runtime="executorch-arm64")


def test_evaluate_gives_the_same_columns_on_both_runtimes(files, capsys):
    reports = {}
    for runtime in ("executorch", "executorch-arm64"):
        capsys.readouterr()
        assert main(["evaluate", str(files.pte), "--runtime", runtime, "--data", str(files.data), "--json"]) == 0
        reports[runtime] = json.loads(capsys.readouterr().out)
    x86, arm = reports["executorch"], reports["executorch-arm64"]
    assert set(x86) == set(arm) and x86["runtime"] == "executorch" and arm["runtime"] == "executorch-arm64"
    assert x86["images"] == arm["images"] == 2


def test_benchmark_etdump_profiles_each_pte_row(files, tmp_path, capsys):
    """`--etdump`: one .etdp per row in OUT/etdump, its operators summed per run within the whole run, in report.md."""
    out = tmp_path / "out"
    status = main(["benchmark", str(files.pte), "--runtimes", "executorch,executorch-arm64", "--etdump", "--runs", "3",
                   "--warmup", "0", "--no-sensitivity", "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    profiles = {p["runtime"]: p for p in results["etdump"]}
    assert set(profiles) == {"executorch", "executorch-arm64"}
    for runtime, prof in profiles.items():
        assert "error" not in prof, prof
        assert (out / prof["file"]).stat().st_size > 0 and prof["runs"] == 3
        ops = {op["operator"]: op for op in prof["operators"]}
        section = ops.pop("DELEGATE_CALL")
        assert section["calls"] == 1 and 0 < section["ms"] <= prof["execute_ms"]
        assert all(op["delegated"] for op in ops.values())  # the whole net is in XNNPACK
        assert sum(op["calls"] for op in ops.values() if "Convolution" in op["operator"]) == 2
        assert sum(op["ms"] for op in ops.values()) <= section["ms"] * 1.01
    report = (out / "report.md").read_text()
    assert "## Per-operator profile (ETDump): conv.pte @executorch-arm64" in report and "3 runs in executorch-arm64" in report
    assert "Convolution (NCHW, F32)" in report or "Convolution (NHWC, F32)" in report


def test_etdump_is_explained_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--etdump" in text and "per operator with ExecuTorch's ETDump" in text
