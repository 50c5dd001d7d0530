"""`egeunet benchmark` on model files made outside egeunet (issue 23): the input comes from the file, latency runs need
no data, failed rows and gates give a non-zero exit, and `--json` parses on export, benchmark, evaluate and info."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from egeunet import EGEUNet, save_checkpoint
from egeunet.cli import main

SIZE = 64  # the egeunet reference's input size: small, so the eval model runs fast
QUICK = ["--runs", "2", "--warmup", "0", "--threads", "1", "--no-sensitivity"]


class TwoConv(torch.nn.Module):
    """A 2-layer conv net made outside egeunet: 3 channels in, ``out`` probabilities per pixel out."""

    def __init__(self, out: int = 1) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.b(torch.relu(self.a(x))))


def _onnx(model: torch.nn.Module, path: Path, size: int, dynamic: dict | None = None) -> Path:
    """``torch.onnx.export`` as a user would (torch.export exporter, opset 18), static batch 1 unless ``dynamic``."""
    torch.onnx.export(model, (torch.rand(1, 3, size, size),), str(path),
                      opset_version=18, verbose=False, external_data=False,
                      input_names=["x"], output_names=["y"], dynamic_axes=dynamic)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> SimpleNamespace:
    """The issue's files: the eval model at opset 18 (static batch 1), a 2-layer conv net at 224 px (static batch,
    dynamic batch, dynamic height and width; a 4-channel output), random bytes named .onnx, a litert-torch .tflite;
    plus an egeunet checkpoint and two dataset images."""
    import litert_torch

    from egeunet.data import write_sample_dataset

    root = tmp_path_factory.mktemp("any_file")
    torch.manual_seed(0)
    model = EGEUNet().eval()
    save_checkpoint(root / "model.pt", model, input_size=SIZE)
    conv = TwoConv().eval()
    batch = {"x": {0: "batch"}, "y": {0: "batch"}}
    (root / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    litert_torch.convert(conv, (torch.rand(1, 3, 224, 224),)).export(str(root / "conv224.tflite"))
    return SimpleNamespace(
        root=root, ckpt=root / "model.pt", data=write_sample_dataset(root / "data", 2, seed=1),
        plain=_onnx(model, root / "plain.onnx", SIZE),
        static=_onnx(conv, root / "conv224_static.onnx", 224),
        dynamic=_onnx(conv, root / "conv224_dynamic.onnx", 224, batch),
        dynamic_hw=_onnx(conv, root / "conv_dynamic_hw.onnx", 224,
                         {"x": {0: "batch", 2: "h", 3: "w"}, "y": {0: "batch", 2: "h", 3: "w"}}),
        four=_onnx(TwoConv(4).eval(), root / "four_channels.onnx", SIZE),
        junk=root / "random.onnx", tflite=root / "conv224.tflite")


def _bench(capsys, argv: list[str], out: Path) -> tuple[int, dict, str]:
    """Exit status, the rows of results.json by name, and the last stderr line of one `egeunet benchmark` run."""
    capsys.readouterr()
    status = main(["benchmark", *argv, *QUICK, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    rows = {r["name"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    return status, rows, err[-1] if err else ""


@pytest.mark.parametrize("name, shape", [("plain", [1, 3, SIZE, SIZE]), ("static", [1, 3, 224, 224]),
                                         ("dynamic", [1, 3, 224, 224]), ("tflite", [1, 3, 224, 224])])
def test_a_file_made_elsewhere_is_timed_without_data(files, tmp_path, capsys, name, shape):
    """No --data: one row, timed model-only on random input of the file's own shape; no accuracy, exit 0."""
    path = getattr(files, name)
    status, rows, last = _bench(capsys, [str(path)], tmp_path / "out")
    row = rows[path.name]
    assert status == 0 and row["status"] == "ok", row
    assert row["input_shape"] == shape and row["input_dtype"] == "float32"
    timing = row["by_threads"][0]
    assert 0 < timing["model"]["min_ms"] <= timing["model"]["p50_ms"] and "end_to_end" not in timing
    assert row["peak_rss_mb"] > 0 and row["bytes"] == path.stat().st_size
    assert "no egeunet contract" in row["note"] and "agreement" not in row and "miou" not in row
    assert "failed" not in last


def test_dynamic_batch_takes_the_batch_and_a_fixed_one_says_so(files, tmp_path, capsys):
    status, rows, _ = _bench(capsys, [str(files.dynamic), "--batch", "2"], tmp_path / "dynamic")
    assert status == 0 and rows[files.dynamic.name]["input_shape"] == [2, 3, 224, 224]
    status, rows, last = _bench(capsys, [str(files.static), "--batch", "2"], tmp_path / "static")
    row = rows[files.static.name]
    assert status == 1 and row["status"] == "failed" and "fixed batch of 1: use --batch 1" in row["note"]
    assert last == f"egeunet benchmark: 1 of 1 rows failed ({files.static.name}): exit 1"


def test_dynamic_height_and_width_ask_for_size(files, tmp_path, capsys):
    status, rows, last = _bench(capsys, [str(files.dynamic_hw)], tmp_path / "no_size")
    row = rows[files.dynamic_hw.name]
    assert status == 1 and row["status"] == "failed"
    assert row["note"].endswith("has a dynamic height or width: give --size")
    assert "1 of 1 rows failed" in last
    status, rows, _ = _bench(capsys, [str(files.dynamic_hw), "--size", "96"], tmp_path / "size")
    assert status == 0 and rows[files.dynamic_hw.name]["input_shape"] == [1, 3, 96, 96]


def test_random_bytes_fail_the_command_unless_keep_going(files, tmp_path, capsys):
    status, rows, last = _bench(capsys, [str(files.junk)], tmp_path / "junk")
    assert status == 1 and "onnxruntime cannot load it" in rows["random.onnx"]["note"]
    assert last == "egeunet benchmark: 1 of 1 rows failed (random.onnx): exit 1"
    status, _, last = _bench(capsys, [str(files.junk), "--keep-going"], tmp_path / "kept")
    assert status == 0 and last.endswith("exit 0 (--keep-going: failed rows do not fail the command)")


def test_mask_output_with_data_and_reference_gets_accuracy(files, tmp_path, capsys):
    """The eval model exported by torch (static batch 1, no contract) fed as egeunet.preprocess: it agrees with its
    own checkpoint, image by image, and passes a gate."""
    status, rows, _ = _bench(capsys, [str(files.plain), "--data", str(files.data), "--split", "all",
                                      "--reference", str(files.ckpt), "--agreement", "0.99"], tmp_path / "out")
    row = rows[files.plain.name]
    assert status == 0 and row["gate"] == "pass", row
    assert row["agreement"] > 0.999 and row["max_abs_dprob"] < 1e-3 and row["images"] == 2
    assert "fed egeunet.preprocess" in row["note"] and "end_to_end" in row["by_threads"][0]


@pytest.mark.parametrize("name, why", [("four", "is not a mask"), ("static", "does not take the reference's")])
def test_accuracy_needs_a_mask_of_the_reference_size_else_a_gate_fails(files, tmp_path, capsys, name, why):
    """A 4-channel output, or an input of another size: latency only, and a gate asked for cannot pass."""
    path = getattr(files, name)
    status, rows, last = _bench(capsys, [str(path), "--data", str(files.data), "--split", "all", "--reference",
                                         str(files.ckpt), "--agreement", "0.99"], tmp_path / "out")
    row = rows[path.name]
    assert row["status"] == "ok" and why in row["note"] and "agreement" not in row
    assert row["by_threads"][0]["model"]["p50_ms"] > 0
    assert status == 1 and row["gate"] == "fail" and last == f"egeunet benchmark: 1 gate failed ({path.name}): exit 1"


def _json(capsys, argv: list[str]) -> tuple[int, dict]:
    """Exit status and the JSON document a command printed on stdout (stdout must hold nothing else)."""
    capsys.readouterr()
    status = main(argv)
    return status, json.loads(capsys.readouterr().out)


def test_json_parses_on_every_command_with_the_same_top_level_keys(files, tmp_path, capsys):
    head = ["command", "model", "exit_code", "summary"]
    status, bench = _json(capsys, ["benchmark", str(files.junk), *QUICK, "--out", str(tmp_path / "b"), "--json"])
    assert status == bench["exit_code"] == 1 and list(bench)[:4] == head and bench["command"] == "benchmark"
    assert bench["summary"].startswith("egeunet benchmark: 1 of 1 rows failed")
    assert bench["rows"][0]["status"] == "failed"
    status, export = _json(capsys, ["export", str(files.ckpt), "--out", str(tmp_path / "e"), "--formats", "onnx",
                                    "--precisions", "fp32", "--n-calib", "1", "--n-held", "1", "--no-golden", "--json"])
    assert status == export["exit_code"] == 0 and list(export)[:4] == head
    assert [a["format"] for a in export["manifest"]["artifacts"]] == ["onnx"]
    onnx_file = tmp_path / "e" / export["manifest"]["artifacts"][0]["file"]
    status, evaluate = _json(capsys, ["evaluate", str(onnx_file), "--data", str(files.data), "--json",
                                      "--cache-dir", str(tmp_path / "cache")])
    assert status == evaluate["exit_code"] == 0 and list(evaluate)[:4] == head and 0 <= evaluate["miou"] <= 1
    for model in (str(files.ckpt), str(onnx_file)):
        status, info = _json(capsys, ["info", model, "--json"])
        assert status == info["exit_code"] == 0 and list(info)[:4] == head and info["model"] == model
