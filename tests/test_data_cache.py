"""The decoded cache: content, reuse without decoding, rebuild on change, validation of bad files, batches."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import egeunet.data.cache as cache_module
from egeunet.data.cache import open_cache
from egeunet.data.imageio import read_image
from egeunet.data.layouts import find_samples
from egeunet.errors import EGEUNetError
from egeunet.training.batches import epoch_order, iterate

IMAGES, MASKS = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"
SIZE = 16


def _dataset(root: Path, n: int = 6) -> Path:
    """n random 30x40 JPEGs with rectangular 0/255 masks, in the ISIC 2018 layout."""
    rng = np.random.default_rng(0)
    (root / IMAGES).mkdir(parents=True)
    (root / MASKS).mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / IMAGES / f"ISIC_{i:07d}.jpg"), rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
        mask = np.zeros((30, 40), np.uint8)
        mask[5 : 10 + i, 8 : 20 + i] = 255
        cv2.imwrite(str(root / MASKS / f"ISIC_{i:07d}_segmentation.png"), mask)
    return root


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls of the real load_pair during cache builds."""
    calls = [0]
    real = cache_module.load_pair

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_module, "load_pair", counting)
    return calls


def test_build_content(tmp_path: Path) -> None:
    samples = find_samples(_dataset(tmp_path / "data"))
    cached = open_cache(samples, SIZE, tmp_path / "cache")
    assert cached.ids == [s.id for s in samples]
    assert isinstance(cached.images, np.memmap) and cached.images.shape == (6, SIZE, SIZE, 3)
    assert cached.masks.shape == (6, SIZE, SIZE) and set(np.unique(cached.masks)) == {0, 255}
    expected = cv2.resize(read_image(samples[2].image), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(cached.images[2], expected)
    mask = cv2.imread(str(samples[2].mask), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(cached.masks[2], cv2.resize(mask, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST))


def test_reuse_then_rebuild_after_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_decodes(monkeypatch)
    root = _dataset(tmp_path / "data")
    first = open_cache(find_samples(root), SIZE, tmp_path / "cache")
    assert calls[0] == 6
    stamp = (first.folder / "images.npy").stat().st_mtime_ns
    again = open_cache(find_samples(root), SIZE, tmp_path / "cache")
    assert calls[0] == 6 and again.folder == first.folder
    assert (again.folder / "images.npy").stat().st_mtime_ns == stamp
    changed = root / MASKS / "ISIC_0000001_segmentation.png"
    cv2.imwrite(str(changed), np.full((30, 40), 255, np.uint8))
    os.utime(changed, ns=(stamp + 10**9, stamp + 10**9))
    rebuilt = open_cache(find_samples(root), SIZE, tmp_path / "cache")
    assert calls[0] == 12 and rebuilt.folder != first.folder
    assert rebuilt.masks[1].min() == 255 and first.masks[1].min() == 0
    assert open_cache(find_samples(root), SIZE + 8, tmp_path / "cache").images.shape[1] == SIZE + 8


def _corrupt(path: Path) -> None:
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG \xff\xd9")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def _wrong_size_mask(path: Path) -> None:
    cv2.imwrite(str(path), np.zeros((31, 40), np.uint8))


def _sixteen_bit(path: Path) -> None:
    cv2.imwrite(str(path.with_suffix(".png")), np.full((30, 40, 3), 40000, np.uint16))
    path.unlink()


def _rgba(path: Path) -> None:
    cv2.imwrite(str(path.with_suffix(".png")), np.full((30, 40, 4), 90, np.uint8))
    path.unlink()


def _no_mask(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    ("damage", "folder", "message"),
    [
        (_corrupt, IMAGES, "corrupt or unreadable"),
        (_truncate, IMAGES, "truncated JPEG"),
        (_wrong_size_mask, MASKS, "mask is 40x31 but its image ISIC_0000003.jpg is 40x30"),
        (_sixteen_bit, IMAGES, "16-bit"),
        (_rgba, IMAGES, "RGBA"),
        (_no_mask, MASKS, "image without a mask"),
    ],
)
def test_bad_file_error_or_skip(tmp_path: Path, damage, folder: str, message: str) -> None:
    root = _dataset(tmp_path / "data")
    name = "ISIC_0000003.jpg" if folder == IMAGES else "ISIC_0000003_segmentation.png"
    damage(root / folder / name)
    samples = find_samples(root)
    with pytest.raises(EGEUNetError, match=message) as info:
        open_cache(samples, SIZE, tmp_path / "cache")
    text = str(info.value)
    assert "ISIC_0000003" in text and "1 of 1 bad files of 6" in text and "\n" not in text
    with pytest.warns(UserWarning, match="skipped 1 bad files of 6") as record:
        cached = open_cache(samples, SIZE, tmp_path / "cache", skip_bad=True)
    assert len(record) == 1 and "ISIC_0000003" in str(record[0].message)
    assert cached.ids == [f"ISIC_{i:07d}" for i in (0, 1, 2, 4, 5)]
    assert cached.images.shape[0] == cached.masks.shape[0] == 5
    np.testing.assert_array_equal(
        cached.images[3], cv2.resize(read_image(samples[4].image), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    )


def test_many_bad_files_counted(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "data")
    for i in (1, 4):
        _truncate(root / IMAGES / f"ISIC_{i:07d}.jpg")
    with pytest.raises(EGEUNetError, match=r"ISIC_0000001\.jpg: truncated JPEG .*1 of 2 bad files of 6"):
        open_cache(find_samples(root), SIZE, tmp_path / "cache")


def test_batches(tmp_path: Path) -> None:
    cached = open_cache(find_samples(_dataset(tmp_path / "data", n=7)), SIZE, tmp_path / "cache")
    batches = list(iterate(cached, np.arange(7), 3, torch.device("cpu")))
    assert [b[1].shape[0] for b in batches] == [3, 3, 1]
    rows, images, masks = batches[0]
    assert images.shape == (3, 3, SIZE, SIZE) and images.dtype == torch.float32
    assert masks.shape == (3, 1, SIZE, SIZE) and set(masks.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(images.amin(dim=(1, 2, 3)), torch.zeros(3))
    assert torch.equal(images.amax(dim=(1, 2, 3)), torch.full((3,), 255.0))
    raw = torch.from_numpy(np.array(cached.masks[rows])).unsqueeze(1)
    assert torch.equal(masks, (raw >= 128).float())
    order = epoch_order(np.arange(7), seed=5, epoch=0)
    assert np.array_equal(order, epoch_order(np.arange(7), seed=5, epoch=0))
    assert sorted(order) == list(range(7)) and not np.array_equal(order, epoch_order(np.arange(7), seed=5, epoch=1))
