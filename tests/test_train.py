"""End-to-end training through the CLI on a tiny synthetic dataset: files, reproducibility, exact resume, errors."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from egeunet import load_model
from egeunet.checkpoint import read_checkpoint
from egeunet.cli import main
from egeunet.data.synthetic import write_sample_dataset

TINY = ["--size", "64", "--channels", "4,8,12,16,24,32", "--batch-size", "4", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_sample_dataset(tmp_path_factory.mktemp("train") / "data", n=12, seed=3)


def _train(dataset: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(dataset), "--out", str(out), "--cache-dir", str(dataset.parent / "cache"),
                 *TINY, *extra])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def straight(dataset) -> Path:
    """A 3-epoch run, the reference for reproducibility and resume."""
    out = dataset.parent / "straight"
    assert _train(dataset, out, "--epochs", "3") == 0
    return out


def test_run_writes_loadable_files_and_logs(straight, dataset):
    for name in ("best.pt", "last.pt", "log.csv", "log.json", "split.json", "test_metrics.json"):
        assert (straight / name).is_file(), name
    model, meta = load_model(straight / "best.pt", with_meta=True)
    assert model.config.channels == (4, 8, 12, 16, 24, 32) and meta["input_size"] == 64
    training = meta["training"]
    assert training["settings"]["lr"] == 1e-3 and training["settings"]["t_max"] == 50
    assert training["data"] == str(dataset.resolve()) and training["seed"] == 0 and len(training["split_hash"]) == 16
    assert training["images"] == {"train": 7, "val": 1, "test": 4}
    rows = json.loads((straight / "log.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[0]["lr"] == pytest.approx(1e-3) and rows[1]["lr"] < rows[0]["lr"]
    assert meta["epoch"] == max((r for r in rows if r["best"]), key=lambda r: r["epoch"])["epoch"]
    assert (straight / "log.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss,val_miou")
    last = read_checkpoint(straight / "last.pt")
    assert last["epoch"] == 3 and last["resume"]["epoch"] == 3
    load_model(straight / "last.pt")  # weights_only=True loads the resume state too
    test = json.loads((straight / "test_metrics.json").read_text())
    assert test["split"] == "test" and test["images"] == 4 and 0.0 <= test["miou"] <= 1.0
    split = json.loads((straight / "split.json").read_text())
    assert sorted(split["test"]) == sorted(w["id"] for w in test["worst"])


def test_seeded_runs_are_reproducible(straight, dataset):
    again = dataset.parent / "again"
    assert _train(dataset, again, "--epochs", "3") == 0
    assert _same(_weights(straight / "last.pt"), _weights(again / "last.pt"))


def test_resume_after_kill_continues_exactly(straight, dataset, tmp_path):
    """Kill a 3-epoch run (SIGKILL) after its first checkpoint, resume it: same weights as the straight run."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "egeunet.cli", "train", "--data", str(dataset), "--out", str(out),
           "--cache-dir", str(dataset.parent / "cache"), "--epochs", "3", *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = read_checkpoint(out / "last.pt")["epoch"]
    assert 1 <= killed_at < 3  # killed mid-run, not after it finished
    assert _train(dataset, out, "--epochs", "3", "--resume") == 0
    assert _same(_weights(straight / "last.pt"), _weights(out / "last.pt"))
    assert _same(_weights(straight / "best.pt"), _weights(out / "best.pt"))
    rows = json.loads((out / "log.json").read_text())
    reference = json.loads((straight / "log.json").read_text())
    keep = ("epoch", "lr", "train_loss", "val_miou", "best")
    assert [{k: r[k] for k in keep} for r in rows] == [{k: r[k] for k in keep} for r in reference]


def test_resume_extends_a_finished_run(straight, dataset, tmp_path):
    """Training 2 epochs then resuming to 3 equals 3 straight (the cosine schedule does not depend on --epochs)."""
    out = tmp_path / "short"
    assert _train(dataset, out, "--epochs", "2") == 0
    assert _train(dataset, out, "--epochs", "3", "--resume") == 0
    assert _same(_weights(straight / "last.pt"), _weights(out / "last.pt"))


def test_interrupted_checkpoint_write_keeps_previous_last(straight, dataset, tmp_path, monkeypatch):
    out = tmp_path / "crash"
    assert _train(dataset, out, "--epochs", "1") == 0
    before = (out / "last.pt").read_bytes()
    real_save = torch.save

    def crash(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        Path(f).write_bytes(Path(f).read_bytes()[:1000])  # half-written file, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    assert _train(dataset, out, "--epochs", "2", "--resume") == 130
    monkeypatch.undo()
    assert (out / "last.pt").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert _train(dataset, out, "--epochs", "2", "--resume") == 0


def test_user_errors_are_one_line(straight, dataset, tmp_path, capsys):
    cases = [
        ([], straight, "already holds a run"),
        (["--resume", "--batch-size", "2"], straight, "batch_size=4, not 2"),
        (["--resume"], tmp_path / "empty", "last.pt not found"),
        (["--size", "70"], tmp_path / "a", "--size: size 70 is not a multiple of 32: use 64"),
        (["--amp"], tmp_path / "b", "--amp needs --device cuda"),
        (["--variant", "tiny"], tmp_path / "c", "unknown variant 'tiny'"),
    ]
    for extra, out, message in cases:
        args = ["train", "--data", str(dataset), "--out", str(out), "--cache-dir", str(dataset.parent / "cache"),
                "--epochs", "1", *TINY, *extra]
        capsys.readouterr()
        assert main(args) == 1, extra
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "d"), *TINY]) == 1
    assert "dataset folder not found" in capsys.readouterr().err


def test_bad_file_stops_before_epoch_one_or_is_skipped(straight, dataset, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    victim = json.loads((straight / "split.json").read_text())["train"][0]  # same seed, same split
    bad = data / "ISIC2018_Task1-2_Training_Input" / f"{victim}.jpg"
    bad.write_bytes(bad.read_bytes()[:400])
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                 "--epochs", "1", *TINY]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{victim}.jpg: truncated JPEG" in err and "--skip-bad" in err
    assert not (tmp_path / "run" / "last.pt").exists()
    with pytest.warns(UserWarning, match="skipped 1 bad files"):
        assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--cache-dir",
                     str(tmp_path / "cache"), "--epochs", "1", "--skip-bad", *TINY]) == 0
    assert read_checkpoint(tmp_path / "run" / "last.pt")["training"]["images"]["train"] == 6


def test_variant_without_heads_trains_on_the_final_loss(dataset, tmp_path):
    assert _train(dataset, tmp_path / "baseline", "--epochs", "1", "--variant", "baseline") == 0
    model = load_model(tmp_path / "baseline" / "best.pt")
    assert model.heads is None and model.config.bridge == "skip"
