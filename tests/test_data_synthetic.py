"""The synthetic dataset: deterministic per (seed, index), plausible masks, mixed sizes, real readers, CLI."""
from pathlib import Path

import numpy as np
import pytest

from egeunet.cli import main
from egeunet.data.cache import open_cache
from egeunet.data.layouts import detect_layout, find_samples
from egeunet.data.synthetic import SIZES, generate_sample, write_sample_dataset
from egeunet.errors import EGEUNetError


def test_deterministic_per_seed_and_index() -> None:
    image, mask = generate_sample(0, 5)
    again_image, again_mask = generate_sample(0, 5)
    assert np.array_equal(image, again_image) and np.array_equal(mask, again_mask)
    other, _ = generate_sample(1, 5)
    assert other.shape != image.shape or not np.array_equal(other, image)


def test_masks_and_sizes() -> None:
    shapes = set()
    for i in range(24):
        image, mask = generate_sample(0, i)
        assert image.dtype == mask.dtype == np.uint8 and image.shape[:2] == mask.shape
        assert set(np.unique(mask)) == {0, 255}
        assert 0.01 < (mask > 0).mean() < 0.6
        inside, outside = image[mask > 0].mean(), image[mask == 0].mean()
        assert inside < outside  # a pigmented lesion is darker than the skin around it
        shapes.add(image.shape[1::-1])
    assert len(shapes) >= 4 and shapes <= set(SIZES)


def test_written_dataset_reads_back(tmp_path: Path) -> None:
    out = write_sample_dataset(tmp_path / "synthetic", n=6, seed=2)
    assert detect_layout(out).name == "isic2018"
    assert (out / "ISIC2018_Task1-2_Training_Input" / "ATTRIBUTION.txt").read_text().startswith("Synthetic")
    samples = find_samples(out)
    assert [s.id for s in samples] == [f"ISIC_{i:07d}" for i in range(6)]
    cached = open_cache(samples, 32, tmp_path / "cache")
    _, mask = generate_sample(2, 4)
    assert abs((cached.masks[4] > 127).mean() - (mask > 0).mean()) < 0.02
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folder left behind"
    with pytest.raises(EGEUNetError, match="not an empty folder"):
        write_sample_dataset(out, n=2, seed=0)


def test_cli_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample-data", "--out", str(tmp_path / "s"), "--n", "3", "--seed", "1"]) == 0
    assert "wrote 3 synthetic images" in capsys.readouterr().out
    assert len(find_samples(tmp_path / "s")) == 3
    assert main(["sample-data", "--out", str(tmp_path / "s"), "--n", "3"]) == 1
    assert "not an empty folder" in capsys.readouterr().err
