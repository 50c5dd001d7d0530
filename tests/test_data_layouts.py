"""Dataset layouts: detection, pairing by id (never by position), ignored and unpaired files."""
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from egeunet.data.layouts import LAYOUTS, detect_layout, find_samples, list_layouts, sample_id
from egeunet.errors import EGEUNetError

IDS = ["ISIC_0000003", "ISIC_0000000", "ISIC_0000042", "ISIC_0000007"]


def _image(path: Path, value: int) -> None:
    """A real 6x8 image file whose pixel value identifies it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((6, 8, 3) if path.suffix == ".jpg" else (6, 8), value, np.uint8))


def _build(root: Path, layout: str, ids: list[str]) -> None:
    """Write `ids` into every part of `layout`, in shuffled creation order, with files to ignore."""
    rng = np.random.default_rng(1)
    for p, (image_dir, mask_dir) in enumerate(LAYOUTS[layout].parts.values()):
        for i in rng.permutation(len(ids)):
            key = f"ISIC_{p}{ids[i][-6:]}"  # distinct ids per part
            _image(root / image_dir / f"{key}.jpg", 10 * i)
            if mask_dir:
                _image(root / mask_dir / f"{key}_segmentation.png", 10 * i)
                _image(root / image_dir / f"{key}_superpixels.png", 1)
        (root / image_dir / "ATTRIBUTION.txt").write_text("x")
        (root / image_dir / "LICENSE.txt").write_text("x")
        (root / image_dir / "metadata.csv").write_text("x")


def test_every_layout_is_tested() -> None:
    assert set(list_layouts()) == {"isic2017", "isic2018", "prepared", "folder"}


@pytest.mark.parametrize("layout", list_layouts())
def test_detect_and_pair_by_id(tmp_path: Path, layout: str) -> None:
    _build(tmp_path, layout, IDS)
    assert detect_layout(tmp_path).name == layout
    parts = list(LAYOUTS[layout].parts)
    samples = find_samples(tmp_path, parts=parts)
    assert len(samples) == len(IDS) * len(parts)
    assert [s.id for s in samples] == sorted(s.id for s in samples)
    for s in samples:
        assert s.image.suffix == ".jpg" and "_superpixels" not in s.image.name
        if layout == "folder":
            assert s.mask is None
        else:
            assert s.mask is not None and sample_id(s.mask) == s.id == s.image.stem
            image_value = int(cv2.imread(str(s.image))[0, 0, 0])
            assert abs(image_value - int(cv2.imread(str(s.mask), 0)[0, 0])) <= 2


def test_default_parts_are_the_papers(tmp_path: Path) -> None:
    _build(tmp_path, "isic2017", IDS)
    samples = find_samples(tmp_path)
    assert {s.image.parent.name for s in samples} == {"ISIC-2017_Training_Data", "ISIC-2017_Validation_Data"}
    test_only = find_samples(tmp_path, parts=["test"])
    assert {s.image.parent.name for s in test_only} == {"ISIC-2017_Test_v2_Data"}


def test_unpaired_files_one_warning(tmp_path: Path) -> None:
    root = tmp_path
    images, masks = root / "ISIC2018_Task1-2_Training_Input", root / "ISIC2018_Task1_Training_GroundTruth"
    for key in IDS:
        _image(images / f"{key}.jpg", 50)
    for key in IDS[:2] + ["ISIC_0009999", "ISIC_0008888"]:
        _image(masks / f"{key}_segmentation.png", 255)
    with pytest.warns(UserWarning, match="2 masks without an image") as record:
        samples = find_samples(root)
    assert len(record) == 1
    assert "ISIC_0008888_segmentation.png" in str(record[0].message)
    by_id = {s.id: s for s in samples}
    assert set(by_id) == set(IDS)
    for key in IDS[:2]:
        assert by_id[key].mask == masks / f"{key}_segmentation.png"
    assert by_id[IDS[2]].mask is None and by_id[IDS[3]].mask is None


def test_empty_folder_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(EGEUNetError, match=str(tmp_path)):
        detect_layout(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(EGEUNetError, match="no images"):
        find_samples(tmp_path)
    with pytest.raises(EGEUNetError, match="not found"):
        find_samples(tmp_path / "absent")
    (tmp_path / "train" / "images").mkdir(parents=True)
    with pytest.raises(EGEUNetError, match=r"no images in the prepared layout \(looked in train/images"):
        find_samples(tmp_path)


def test_duplicate_id_and_unknown_part(tmp_path: Path) -> None:
    _image(tmp_path / "ISIC_0000001.jpg", 1)
    _image(tmp_path / "ISIC_0000001.png", 1)
    with pytest.raises(EGEUNetError, match="same id ISIC_0000001"):
        find_samples(tmp_path)
    with pytest.raises(EGEUNetError, match="no part 'train'"):
        find_samples(tmp_path, parts=["train"])
    with pytest.raises(EGEUNetError, match="unknown dataset layout"):
        find_samples(tmp_path, layout="isic2030")


def test_images_of_an_unsupported_type_are_named(tmp_path: Path) -> None:
    """A .webp among the images is reported in one warning, not silently left out; other files stay quiet."""
    images, masks = tmp_path / "ISIC2018_Task1-2_Training_Input", tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    for key in IDS:
        _image(images / f"{key}.jpg", 50)
        _image(masks / f"{key}_segmentation.png", 255)
    (images / "ISIC_0000099.webp").write_bytes(b"RIFF....WEBP")
    (images / "LICENSE.txt").write_text("x")
    with pytest.warns(UserWarning, match=r"skipped 1 file of unsupported type: ISIC_0000099\.webp \(readable: ") as rec:
        samples = find_samples(tmp_path)
    assert len(rec) == 1 and len(samples) == len(IDS)
    (images / "ISIC_0000099.webp").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(find_samples(tmp_path)) == len(IDS)
