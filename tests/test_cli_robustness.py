"""Issue 9: bad options and paths fail in one line before any work, damaged files are handled, logs stay readable."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tqdm import tqdm

from egeunet import EGEUNet, save_checkpoint
from egeunet import progress as progress_module
from egeunet.atomic import write_bytes_atomic
from egeunet.checkpoint import read_checkpoint
from egeunet.cli import main
from egeunet.data.cache import open_cache
from egeunet.data.layouts import find_samples
from egeunet.data.synthetic import IMAGE_FOLDER, write_sample_dataset
from egeunet.errors import EGEUNetError
from egeunet.progress import LineProgress, progress

NARROW = (4, 8, 12, 16, 24, 32)
TINY_TRAIN = ["--size", "64", "--channels", ",".join(map(str, NARROW)), "--batch-size", "4", "--threads", "1",
              "--no-progress"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_sample_dataset(tmp_path_factory.mktemp("robust") / "data", n=6, seed=5)


@pytest.fixture(scope="module")
def model(dataset) -> Path:
    path = dataset.parent / "tiny.pt"
    save_checkpoint(path, EGEUNet(channels=NARROW), input_size=64)
    return path


def _one_line_error(capsys, argv: list[str], after_work: bool = False) -> str:
    """Run the CLI, require exit status 1 and one error line (after progress lines only if ``after_work``)."""
    capsys.readouterr()
    assert main(argv) == 1, argv
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith(f"egeunet {argv[0]}: error: "), lines
    assert len(lines) == 1 or (after_work and all(" [" in line for line in lines[:-1])), lines
    return lines[-1]


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot create entries in (chmod 555; as root, where that does not bind, /sys)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").mkdir()
    except OSError:
        return folder
    (folder / "probe").rmdir()
    try:
        os.mkdir("/sys/egeunet-probe")
    except OSError:
        return Path("/sys")
    os.rmdir("/sys/egeunet-probe")
    pytest.skip("no folder here refuses writes to this user")


@pytest.mark.parametrize("seed, n", [(17, 8), (21, 5000), (0, 8), (1, 5000), (2, 64)])
def test_random_bytes_checkpoint_is_one_line(tmp_path, seed, n):
    """Seeds 17 and 21 made torch's unpickler raise IndexError; every failure must name the file."""
    path = tmp_path / "model.pt"
    path.write_bytes(np.random.default_rng(seed).bytes(n))
    with pytest.raises(EGEUNetError, match="model.pt: not a"):
        read_checkpoint(path)


def test_bad_options_fail_in_one_line_before_any_work(dataset, tmp_path, capsys):
    """Model and data paths that do not exist: the option error must come first, so nothing else was opened."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    missing, data = str(tmp_path / "missing.pt"), str(tmp_path / "no-data")
    cases = [
        (["info", "--size", "0"], "--size: size 0 is out of range: sizes are multiples of 32 from 32 to 2048"),
        (["info", "--size", "-32"], "--size: size -32 is out of range"),
        (["info", "--size", "70"], "--size: size 70 is not a multiple of 32: use 64"),
        (["evaluate", missing, "--data", data, "--size", "100000"], "--size: size 100000 is out of range"),
        (["evaluate", missing, "--data", data, "--threads", "0"], "--threads must be at least 1, got 0"),
        (["predict", missing, data, "--out", str(tmp_path / "p"), "--threads", "-1"], "--threads must be at least 1"),
        (["predict", missing, data, "--out", str(a_file)], f"--out {a_file}: is a file, not a folder"),
        (["predict", missing, data, "--out", str(a_file / "sub")], f"{a_file} is a file, so the folder cannot"),
        (["export", missing, "--out", str(tmp_path / "e"), "--n-held", "0"], "--n-held must be at least 1, got 0"),
        (["export", missing, "--out", str(tmp_path / "e"), "--n-calib", "-3"], "--n-calib must be at least 1"),
        (["export", missing, "--out", str(tmp_path / "e"), "--size", "100000"], "--size: size 100000 is out of range"),
        (["export", missing, "--out", str(a_file)], "is a file, not a folder"),
        (["benchmark", missing, "--data", data, "--out", str(a_file)], "is a file, not a folder"),
        (["benchmark", missing, "--data", data, "--out", str(tmp_path / "b"), "--warmup", "-1"],
         "--warmup must be 0 or more, got -1"),
        (["train", "--data", data, "--out", str(a_file)], "is a file, not a folder"),
        (["train", "--data", data, "--out", str(tmp_path / "t"), "--size", "-64"], "--size: size -64 is out of range"),
        (["demo", "--out", str(a_file)], "is a file, not a folder"),
        (["demo", "--out", str(tmp_path / "d"), "--n", "0"], "--n must be at least 1, got 0"),
        (["sample-data", "--out", str(a_file)], "is a file, not a folder"),
        (["sample-data", "--out", str(tmp_path / ("d" * 256) / "x")], "the name is 256 bytes, longer than the 255"),
    ]
    for argv, message in cases:
        assert message in _one_line_error(capsys, argv), argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no output folder was started


def test_unwritable_out_is_one_line(dataset, model, tmp_path, capsys):
    target = _unwritable(tmp_path) / "out"
    for argv in (["predict", str(model), str(dataset), "--out", str(target)],
                 ["train", "--data", str(dataset), "--out", str(target), *TINY_TRAIN],
                 ["export", str(model), "--out", str(target)],
                 ["benchmark", str(model), "--data", str(dataset), "--out", str(target)]):
        assert f"--out {target}: not writable" in _one_line_error(capsys, argv)


def test_cache_setting_pointing_at_a_file(dataset, model, tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "cache-file"
    a_file.write_text("x")
    monkeypatch.setenv("EGEUNET_CACHE", str(a_file))
    err = _one_line_error(capsys, ["evaluate", str(model), "--data", str(dataset)])
    assert err.endswith(f"$EGEUNET_CACHE {a_file}: is a file, not a folder; choose a folder path")
    err = _one_line_error(capsys, ["train", "--data", str(dataset), "--out", str(tmp_path / "run"), *TINY_TRAIN])
    assert "$EGEUNET_CACHE" in err and not (tmp_path / "run").exists()
    with pytest.raises(EGEUNetError, match=r"\$EGEUNET_CACHE .*cache-file: cannot write .*a file is in the way"):
        open_cache(find_samples(dataset), size=32)  # the library says so too, for callers other than the CLI
    err = _one_line_error(capsys, ["evaluate", str(model), "--data", str(dataset), "--cache-dir", str(a_file / "x")])
    assert err.endswith(f"--cache-dir {a_file / 'x'}: {a_file} is a file, so the folder cannot be created there; "
                        "choose another path")


@pytest.mark.parametrize("damage", ["truncate images", "truncate masks", "truncate meta", "wrong shape"])
def test_damaged_cache_is_rebuilt(dataset, tmp_path, damage):
    samples = find_samples(dataset)
    first = open_cache(samples, size=32, cache_dir=tmp_path)
    images, masks = np.array(first.images), np.array(first.masks)
    folder = first.folder
    del first
    name = {"truncate images": "images.npy", "truncate masks": "masks.npy", "truncate meta": "meta.json"}.get(damage)
    if name:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    else:
        np.save(folder / "masks.npy", np.zeros((2, 32, 32), np.uint8))
    with pytest.warns(UserWarning, match="damaged cache file.*rebuilding the cache"):
        again = open_cache(samples, size=32, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.images, images)
    np.testing.assert_array_equal(again.masks, masks)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # the damaged copy is gone


def test_atomic_temporary_name_is_bounded(tmp_path):
    """A final name of 255 bytes must be writable: the temporary name may not be longer."""
    longest = tmp_path / ("n" * 251 + ".png")
    write_bytes_atomic(longest, b"data")
    assert longest.read_bytes() == b"data" and [p.name for p in tmp_path.iterdir()] == [longest.name]
    with pytest.raises(EGEUNetError, match=r"the name is 256 bytes, longer than the 255 bytes"):
        write_bytes_atomic(tmp_path / ("n" * 256), b"data")


def test_predict_long_names_and_all_bad_inputs(dataset, model, tmp_path, capsys):
    source = sorted((dataset / IMAGE_FOLDER).glob("*.jpg"))[0]
    images = tmp_path / "in"
    images.mkdir()
    fits = images / ("f" * 240 + ".jpg")  # 240 + len("_overlay.png") = 252 bytes
    fits.write_bytes(source.read_bytes())
    out = tmp_path / "out"
    assert main(["predict", str(model), str(fits), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["f" * 240 + "_mask.png", "f" * 240 + "_overlay.png"]
    too_long = images / ("g" * 250 + ".jpg")
    too_long.write_bytes(source.read_bytes())
    err = _one_line_error(capsys, ["predict", str(model), str(too_long), "--out", str(tmp_path / "out2")])
    assert "_overlay.png: the name is 262 bytes" in err and f"rename the input {too_long}" in err
    assert not (tmp_path / "out2").exists()

    bad = tmp_path / "bad"
    bad.mkdir()
    for i, ext in enumerate(("jpg", "png")):
        (bad / f"b{i}.{ext}").write_bytes(np.random.default_rng(i).bytes(300))
    err = _one_line_error(capsys, ["predict", str(model), str(bad), "--out", str(tmp_path / "out3"), "--skip-bad"],
                          after_work=True)
    assert "none of the 2 images could be read (--skip-bad)" in err


def test_warnings_are_one_line_without_source(dataset, model, tmp_path):
    """A real process: one good and one corrupt image with --skip-bad warn once, in one line."""
    images = tmp_path / "in"
    images.mkdir()
    good = sorted((dataset / IMAGE_FOLDER).glob("*.jpg"))[0]
    (images / "good.jpg").write_bytes(good.read_bytes())
    (images / "bad.jpg").write_bytes(b"not a jpeg")
    proc = subprocess.run([sys.executable, "-m", "egeunet.cli", "predict", str(model), str(images), "--out",
                           str(tmp_path / "out"), "--skip-bad"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warning == [f"egeunet predict: warning: skipped 1 of 2 images; first: {images / 'bad.jpg'}: corrupt or "
                       "unreadable image (OpenCV cannot decode it)"], proc.stderr
    assert "warnings.warn" not in proc.stderr and ".py:" not in proc.stderr


def test_second_resume_of_finished_run_says_finished(dataset, tmp_path, capsys):
    data = tmp_path / "data"
    data.symlink_to(dataset, target_is_directory=True)
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
            *TINY_TRAIN]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    data.unlink()  # a finished run needs no data: the resume must not read it
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    said = capsys.readouterr().out
    test = json.loads(before["test_metrics.json"])
    assert f"{out}: this run is already finished (1 of 1 epochs done" in said and "epochs 2..1" not in said
    assert f"test mIoU {test['miou']:.4f}" in said and "pass a larger --epochs" in said
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "\r" not in err
    return err.splitlines()


def test_progress_off_a_terminal_prints_lines_at_tenths_and_every_five_seconds(capsys, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress_module, "_clock", lambda: clock[0])
    bar = progress(range(50), desc="caching", unit="img")
    assert isinstance(bar, LineProgress)  # pytest's captured stderr is not a terminal
    for _ in bar:
        clock[0] += 0.01
    lines = _lines(capsys)
    assert [line.split("%")[0] for line in lines] == [f"caching: {p}" for p in range(10, 101, 10)]
    assert lines[-1].startswith("caching: 100% 50/50 [")

    with progress(desc="epoch 1/3", total=100, unit="batch", leave=False) as bar:  # inner loop: timed lines only
        for _ in range(100):
            clock[0] += 0.25
            bar.update(1)
            bar.set_postfix(loss="0.1234")
    lines = _lines(capsys)
    assert [line.split("%")[0] for line in lines] == [f"epoch 1/3: {p}" for p in (20, 40, 60, 80, 100)]
    assert lines[-1].endswith("4.00batch/s, loss=0.1234]")

    with progress(desc="quick", total=10, leave=False) as bar:
        bar.update(10)
    assert _lines(capsys) == []  # a transient loop that never printed leaves nothing

    for _ in progress(iter(range(7)), desc="unsized"):
        clock[0] += 3.0
    assert [line.split(" [")[0] for line in _lines(capsys)] == ["unsized: 2", "unsized: 4", "unsized: 6", "unsized: 7"]


def test_progress_on_a_terminal_is_tqdm(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress(range(3), desc="x")
    assert isinstance(bar, tqdm)
    bar.close()
    assert isinstance(progress(range(3), disable=True), tqdm)


def test_cli_log_has_no_carriage_returns(tmp_path):
    """`sample-data` into a pipe: whole progress lines, at most one per tenth plus the final one."""
    argv = ["sample-data", "--out", str(tmp_path / "d"), "--n", "20"]
    proc = subprocess.run([sys.executable, "-m", "egeunet.cli", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "\r" not in proc.stderr and 1 <= len(lines) <= 11
    assert lines[-1].startswith("writing synthetic samples: 100% 20/20 [")


def test_os_errors_during_work_are_one_line(dataset, model, tmp_path, capsys):
    """A folder squatting on an output file's name: the rename fails mid-run, and says where and why."""
    image = sorted((dataset / IMAGE_FOLDER).glob("*.jpg"))[0]
    squatter = tmp_path / "out" / f"{image.stem}_mask.png"
    squatter.mkdir(parents=True)
    err = _one_line_error(capsys, ["predict", str(model), str(image), "--out", str(tmp_path / "out")])
    assert err.endswith(f"{squatter}: Is a directory")
    assert [p.name for p in (tmp_path / "out").iterdir()] == [squatter.name]  # no temporary file left behind
