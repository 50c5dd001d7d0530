"""`egeunet evaluate` and `egeunet predict` on models whose predictions are known exactly."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from egeunet import EGEUNet, save_checkpoint
from egeunet.cli import main
from egeunet.data.cache import open_cache
from egeunet.data.imageio import read_image, read_mask
from egeunet.data.layouts import find_samples
from egeunet.data.synthetic import write_sample_dataset
from egeunet.training.evaluate import evaluate_rows

NARROW = (4, 8, 12, 16, 24, 32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_sample_dataset(tmp_path_factory.mktemp("eval") / "data", n=6, seed=7)


def _constant_model(path: Path, bias: float) -> Path:
    """A checkpoint predicting sigmoid(bias) everywhere: all lesion (+) or all skin (-)."""
    model = EGEUNet(channels=NARROW)
    with torch.no_grad():
        model.final.weight.zero_()
        model.final.bias.fill_(bias)
    save_checkpoint(path, model, input_size=64)
    return path


def _foreground_fraction(dataset: Path, size: int) -> tuple[int, int]:
    """Foreground and total pixel counts of every mask resized (nearest) to size, straight from the files."""
    fg = total = 0
    for sample in find_samples(dataset):
        mask = cv2.resize(read_mask(sample.mask), (size, size), interpolation=cv2.INTER_NEAREST)
        fg += int((mask >= 128).sum())
        total += mask.size
    return fg, total


def _json(capsys, args: list[str]) -> dict:
    capsys.readouterr()
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_all_lesion_and_all_skin_models(dataset, tmp_path, capsys):
    fg, total = _foreground_fraction(dataset, 64)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    lesion = _json(capsys, ["evaluate", str(_constant_model(tmp_path / "lesion.pt", 20.0)), "--data", str(dataset),
                            "--json", *cache])
    assert lesion["split"] == "all" and lesion["images"] == 6 and lesion["size"] == 64
    assert lesion["confusion"] == {"tp": fg, "fp": total - fg, "fn": 0, "tn": 0}
    assert lesion["miou"] == pytest.approx(fg / total) and lesion["dsc"] == pytest.approx(2 * fg / (fg + total))
    assert lesion["sensitivity"] == 1.0 and lesion["specificity"] == 0.0
    skin = _json(capsys, ["evaluate", str(_constant_model(tmp_path / "skin.pt", -20.0)), "--data", str(dataset),
                          "--json", *cache])
    assert skin["miou"] == 0.0 and skin["accuracy"] == pytest.approx(1 - fg / total) and skin["specificity"] == 1.0
    assert skin["image_iou_mean"] == 0.0 and len(skin["worst"]) == 6
    assert set(lesion) >= {"model", "runtime", "split_source", "image_dice_mean", "pixels"}


def test_evaluate_ground_truth_scores_one(dataset, tmp_path):
    cached = open_cache(find_samples(dataset), size=64, cache_dir=tmp_path)
    masks = torch.from_numpy(np.asarray(cached.masks, np.float32) / 255)
    batches = iter([masks[:4, None], masks[4:, None]])
    m = evaluate_rows(lambda x: next(batches), cached, np.arange(6), batch_size=4)
    assert m["miou"] == m["dsc"] == m["accuracy"] == m["image_iou_mean"] == 1.0


def test_evaluate_split_choice_and_errors(dataset, tmp_path, capsys):
    model = str(_constant_model(tmp_path / "m.pt", 20.0))
    split = {"train": ["ISIC_0000000", "ISIC_0000001"], "val": ["ISIC_0000002"], "test": ["ISIC_0000004"]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    out = _json(capsys, ["evaluate", model, "--data", str(dataset), "--split-file", str(tmp_path / "split.json"),
                         "--json", "--cache-dir", str(tmp_path / "cache")])
    assert out["split"] == "test" and [w["id"] for w in out["worst"]] == ["ISIC_0000004"]
    recorded = tmp_path / "trained.pt"  # a training checkpoint records its data folder and split file
    save_checkpoint(recorded, EGEUNet(channels=NARROW), input_size=64,
                    training={"data": str(dataset.resolve()), "split_file": str(tmp_path / "split.json")})
    out = _json(capsys, ["evaluate", str(recorded), "--data", str(dataset), "--json", "--split", "val",
                         "--cache-dir", str(tmp_path / "cache")])
    assert out["images"] == 1 and "recorded in the checkpoint" in out["split_source"]
    other = tmp_path / "other"
    shutil.copytree(dataset, other)  # another folder: the recorded split does not apply
    out = _json(capsys, ["evaluate", str(recorded), "--data", str(other), "--json", "--cache-dir", str(tmp_path / "cache")])
    assert out["split"] == "all" and out["images"] == 6
    for args, message in [
        ([model, "--data", str(dataset), "--split", "test"], "needs a split"),
        ([str(tmp_path / "missing.pt"), "--data", str(dataset)], "no such file"),
        ([model, "--data", str(tmp_path / "nowhere")], "dataset folder not found"),
    ]:
        capsys.readouterr()
        assert main(["evaluate", *args, "--cache-dir", str(tmp_path / "cache")]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_predict_writes_masks_and_overlays_at_image_size(dataset, tmp_path, capsys):
    model = str(_constant_model(tmp_path / "lesion.pt", 20.0))
    images = dataset / "ISIC2018_Task1-2_Training_Input"
    assert main(["predict", model, str(images), "--out", str(tmp_path / "out")]) == 0
    for path in sorted(images.glob("*.jpg")):
        image = read_image(path)
        mask = read_mask(tmp_path / "out" / f"{path.stem}_mask.png")
        over = read_image(tmp_path / "out" / f"{path.stem}_overlay.png")
        assert mask.shape == image.shape[:2] and over.shape == image.shape
        assert set(np.unique(mask)) == {255}  # all lesion
        assert not np.array_equal(over, image)
    assert "wrote the mask and overlay of 6 of 6 images" in capsys.readouterr().out


def test_predict_bad_image_is_one_line_or_skipped(dataset, tmp_path, capsys):
    model = str(_constant_model(tmp_path / "skin.pt", -20.0))
    good = next((dataset / "ISIC2018_Task1-2_Training_Input").glob("*.jpg"))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(good.read_bytes()[:500])
    capsys.readouterr()
    assert main(["predict", model, str(good), str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith("egeunet predict: error: ") and err.endswith("broken.jpg: truncated JPEG (no end-of-image marker)")
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        assert main(["predict", model, str(good), str(bad), "--out", str(tmp_path / "o"), "--skip-bad"]) == 0
    mask = read_mask(tmp_path / "o" / f"{good.stem}_mask.png")
    assert mask.max() == 0 and not (tmp_path / "o" / "broken_mask.png").exists()
