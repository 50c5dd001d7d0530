"""Export folders are never inconsistent: a lock against concurrent runs, a true manifest after any run, even a killed one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from egeunet import EGEUNet, save_checkpoint
from egeunet.cli import main
from egeunet.errors import EGEUNetError
from egeunet.export import export_all
from egeunet.export.folder import ExportFolder
from egeunet.runtime.artifacts import file_digest

SIZE = 64


def _checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    save_checkpoint(path, EGEUNet().eval(), SIZE)
    return path


def assert_consistent(out: Path, killed: bool = False) -> dict:
    """Every file the manifest lists exists with its recorded sha256; no staging folder is left (a SIGKILLed run
    cannot clean up: its staging folder stays, unlisted, until the next run removes it)."""
    manifest = json.loads((out / "manifest.json").read_text())
    for record in manifest["artifacts"]:
        assert file_digest(out / record["file"]) == (record["bytes"], record["sha256"]), record["file"]
    assert killed or not (out / ".pending").exists()
    return manifest


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> tuple[Path, Path]:
    """An export folder holding ONNX fp32 and fp16 of one model."""
    root = tmp_path_factory.mktemp("folder")
    ckpt = _checkpoint(root / "a.pt", 0)
    out = root / "export"
    export_all(ckpt, out, formats="onnx", precisions="fp32,fp16", n_calib=2, n_held=2, golden=False, progress=False)
    return ckpt, out


def test_a_failed_reexport_keeps_the_earlier_good_artifacts(first, tmp_path, monkeypatch):
    ckpt, out = first
    before = assert_consistent(out)
    from egeunet.export import onnx_export

    def crash(*args, **kwargs):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(onnx_export, "_to_onnx", crash)
    with pytest.raises(EGEUNetError, match="converter exploded"):
        export_all(ckpt, out, formats="onnx", precisions="fp16", n_calib=2, n_held=2, golden=False, progress=False)
    after = assert_consistent(out)
    assert {r["file"] for r in after["artifacts"]} == {r["file"] for r in before["artifacts"]}
    assert all(r["from_earlier_export"] for r in after["artifacts"])
    assert after["failed"][0]["file"] == "egeunet_fp16.onnx" and after["complete"]


def test_a_second_export_into_a_locked_folder_fails_at_once(first, capsys):
    ckpt, out = first
    with ExportFolder(out):
        start = time.perf_counter()
        assert main(["export", str(ckpt), "--out", str(out), "--formats", "onnx", "--precisions", "fp32"]) == 1
        assert time.perf_counter() - start < 30
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and f"process {os.getpid()}" in err
    with ExportFolder(out):  # released: the next run takes it (a killed holder's flock vanishes with it)
        pass


def test_a_killed_export_leaves_a_true_manifest_and_the_next_run_recovers(first, tmp_path):
    ckpt, out = first
    other = _checkpoint(tmp_path / "b.pt", 1)
    proc = subprocess.Popen([sys.executable, "-m", "egeunet.cli", "export", str(other), "--out", str(out),
                             "--formats", "onnx,tflite", "--precisions", "fp32,fp16", "--n-calib", "2", "--n-held", "2",
                             "--no-golden"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / ".pending").glob("*")):
        time.sleep(0.05)  # kill it while an artifact is being built
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not assert_consistent(out, killed=True)["complete"]
    export_all(ckpt, out, formats="onnx", precisions="fp32", n_calib=2, n_held=2, golden=False,
               progress=False)  # lock and .pending recovered
    assert assert_consistent(out)["complete"]


def test_held_out_images_are_the_models_own_test_split(tmp_path):
    """--calib DATA where DATA is the model's training data: calibrate on its train part, gate on its test part."""
    from egeunet.data import write_sample_dataset
    from egeunet.data.splits import save_split
    from egeunet.export.api import _image_sets

    data = write_sample_dataset(tmp_path / "data", 10, seed=4)
    ids = sorted(p.stem for p in (data / "ISIC2018_Task1-2_Training_Input").glob("*.jpg"))
    split_file = tmp_path / "split.json"
    save_split(split_file, {"train": ids[:6], "val": ids[6:7], "test": ids[7:]})
    torch.manual_seed(0)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, EGEUNet().eval(), SIZE, training={"data": str(data.resolve()), "split_file": str(split_file)})
    calib, held = _image_sets(SIZE, data, None, 4, None, ckpt)
    assert calib.ids == tuple(ids[:4]) and held.ids == tuple(ids[7:])
    assert "test part" in held.source and held.masks is not None
    other = _image_sets(SIZE, data, None, 4, 2, tmp_path / "m.pt")[1]
    assert other.ids == tuple(ids[7:9])  # --n-held caps the test part
    synthetic = _image_sets(SIZE, None, None, 4, None, ckpt)[1]
    assert len(synthetic) == 32  # no split known: 32 held-out images by default


def test_golden_vectors_cover_only_listed_artifacts(first, tmp_path):
    """A stale model file left in the folder (not in the manifest) gets no golden vectors."""
    import shutil

    ckpt, out = first
    folder = tmp_path / "golden-export"
    shutil.copytree(out, folder)
    shutil.copy(folder / "egeunet_fp32.onnx", folder / "stale.onnx")
    manifest = export_all(ckpt, folder, formats="onnx", precisions="fp32", n_calib=2, n_held=2, progress=False)
    index = json.loads((folder / manifest["golden"]["index"]).read_text())
    assert {a["file"] for a in index["artifacts"]} == {r["file"] for r in manifest["artifacts"]}
    assert "stale.onnx" not in {a["file"] for a in index["artifacts"]}
