"""Seeded random bytes as model files, images and manifests, fed to every command: exit status, never a traceback."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from egeunet import EGEUNet, save_checkpoint
from egeunet.cli import main
from egeunet.data.synthetic import IMAGE_FOLDER, MASK_FOLDER, write_sample_dataset

NARROW = (4, 8, 12, 16, 24, 32)
QUICK_BENCH = ["--runs", "1", "--warmup", "0", "--n-held", "2", "--no-sensitivity"]
TRAIN = ["--size", "64", "--channels", ",".join(map(str, NARROW)), "--epochs", "1", "--batch-size", "2",
         "--threads", "1", "--no-progress"]


def _junk(path: Path, seed: int, n: int) -> Path:
    path.write_bytes(np.random.default_rng(seed).bytes(n))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> SimpleNamespace:
    """A good tiny dataset and model beside random-byte models, images, a dataset of junk and a junk manifest."""
    root = tmp_path_factory.mktemp("fuzz")
    data = write_sample_dataset(root / "data", n=4, seed=1)
    model = root / "tiny.pt"
    save_checkpoint(model, EGEUNet(channels=NARROW), input_size=64)
    junk_data = root / "junk-data"
    (junk_data / IMAGE_FOLDER).mkdir(parents=True)
    (junk_data / MASK_FOLDER).mkdir()
    images = root / "junk-images"
    images.mkdir()
    for i in range(4):
        _junk(junk_data / IMAGE_FOLDER / f"ISIC_{i:07d}.jpg", 100 + i, 2000)
        _junk(junk_data / MASK_FOLDER / f"ISIC_{i:07d}_segmentation.png", 200 + i, 500)
        _junk(images / f"junk{i}.{('jpg', 'png')[i % 2]}", 300 + i, 1500)
    export = root / "export"
    export.mkdir()
    _junk(export / "manifest.json", 400, 600)
    return SimpleNamespace(root=root, data=data, model=model, junk_data=junk_data, images=images, export=export,
                           good_images=data / IMAGE_FOLDER,
                           junk={ext: _junk(root / f"junk.{ext}", 500 + i, 4000) for i, ext in
                                 enumerate(("pt", "onnx", "tflite"))})


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of the CLI; an exception escaping main fails the test like a traceback."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse usage errors
        status = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return status, out, err


def _error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith(f"egeunet {command}: error: "), err
    return lines[-1]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("n", [1, 8, 100, 5000])
def test_info_on_random_checkpoint_bytes(files, capsys, seed, n):
    path = _junk(files.root / f"seed{seed}-{n}.pt", seed, n)
    status, _, err = _run(capsys, ["info", str(path)])
    assert status == 1 and str(path) in _error_line(err, "info")


@pytest.mark.parametrize("ext", ["pt", "onnx", "tflite"])
def test_random_model_files(files, tmp_path, capsys, ext):
    junk = str(files.junk[ext])
    for argv in (["evaluate", junk, "--data", str(files.data)],
                 ["predict", junk, str(files.good_images), "--out", str(tmp_path / "predict")],
                 ["export", junk, "--out", str(tmp_path / "export"), "--formats", "onnx", "--precisions", "fp32"]):
        status, _, err = _run(capsys, argv)
        assert status == 1 and junk in _error_line(err, argv[0]), argv
    assert not (tmp_path / "predict").exists() or not any((tmp_path / "predict").iterdir())


@pytest.mark.parametrize("ext", ["pt", "onnx", "tflite"])
def test_benchmark_of_a_random_model_file_marks_the_row(files, tmp_path, capsys, ext):
    """A row that cannot load is reported and fails the command with a one-line summary; --keep-going lets it pass."""
    junk = files.junk[ext]
    argv = ["benchmark", str(junk), "--data", str(files.data), "--out", str(tmp_path / "b"), *QUICK_BENCH]
    status, out, err = _run(capsys, argv)
    row = next(line for line in out.splitlines() if line.startswith(junk.name))
    assert status == 1 and "failed" in row and (tmp_path / "b" / "report.md").is_file()
    summary = err.strip().splitlines()[-1]  # a lone .pt is its own reference row: "junk.pt (reference)"
    assert summary.startswith(f"egeunet benchmark: 1 of 1 rows failed ({junk.name}") and summary.endswith("exit 1")
    status, _, err = _run(capsys, [*argv, "--keep-going"])
    assert status == 0 and "--keep-going" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("ext", ["pt", "onnx", "tflite"])
def test_benchmark_gate_fails_on_a_random_model_file(files, tmp_path, capsys, ext):
    status, out, _ = _run(capsys, ["benchmark", str(files.junk[ext]), "--data", str(files.data), "--out",
                                   str(tmp_path / "b"), "--agreement", "0.99", *QUICK_BENCH])
    assert status == 1 and f"gate failed: junk.{ext}" in out


def test_benchmark_of_an_export_folder_with_a_random_manifest(files, tmp_path, capsys):
    status, _, err = _run(capsys, ["benchmark", str(files.export), "--data", str(files.data), "--out",
                                   str(tmp_path / "b"), *QUICK_BENCH])
    assert status == 1 and "manifest.json" in _error_line(err, "benchmark")


@pytest.mark.filterwarnings("ignore:skipped 4 bad files")
@pytest.mark.parametrize("skip_bad", [[], ["--skip-bad"]])
def test_random_images(files, tmp_path, capsys, skip_bad):
    """Every image is junk: an error either way (with --skip-bad nothing usable is left)."""
    junk_data, model = str(files.junk_data), str(files.model)
    cases = [
        ["predict", model, str(files.images), "--out", str(tmp_path / "p"), *skip_bad],
        ["evaluate", model, "--data", junk_data, "--cache-dir", str(tmp_path / "cache"), *skip_bad],
        ["train", "--data", junk_data, "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
         *TRAIN, *skip_bad],
    ]
    if not skip_bad:
        cases.append(["benchmark", model, "--data", junk_data, "--out", str(tmp_path / "b"), *QUICK_BENCH])
        cases.append(["export", model, "--out", str(tmp_path / "e"), "--calib", str(files.images), "--n-calib", "1",
                      "--n-held", "1", "--formats", "onnx", "--precisions", "fp32"])
    for argv in cases:
        status, _, err = _run(capsys, argv)
        assert status == 1, argv
        assert "junk" in _error_line(err, argv[0]) or "ISIC_" in err, argv
    assert not (tmp_path / "run" / "last.pt").exists()


def test_some_random_images_are_skipped(files, tmp_path, capsys):
    """One good image among junk with --skip-bad: the good one is written, the rest counted, exit 0."""
    images = tmp_path / "mixed"
    images.mkdir()
    for path in files.images.iterdir():
        (images / path.name).write_bytes(path.read_bytes())
    good = sorted(files.good_images.glob("*.jpg"))[0]
    (images / good.name).write_bytes(good.read_bytes())
    with pytest.warns(UserWarning, match="skipped 4 of 5 images"):
        status, out, _ = _run(capsys, ["predict", str(files.model), str(images), "--out", str(tmp_path / "p"),
                                       "--skip-bad"])
    assert status == 0 and "1 of 5 images" in out
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [f"{good.stem}_mask.png", f"{good.stem}_overlay.png"]
