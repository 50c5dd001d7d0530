"""The split protocol: seeded 7:3 train/test, validation carved from train, JSON roundtrip, selection."""
import json
from pathlib import Path

import pytest

from egeunet.data.layouts import Sample
from egeunet.data.splits import load_split, make_split, save_split, select
from egeunet.errors import EGEUNetError

IDS = [f"ISIC_{i:07d}" for i in range(2694)]


def test_paper_proportions_and_disjoint() -> None:
    split = make_split(IDS, seed=0)
    assert len(split["test"]) == 808  # the paper's ISIC 2018 test size
    assert len(split["val"]) == round(1886 * 0.1)
    assert len(split["train"]) + len(split["val"]) == 1886
    parts = [set(split[p]) for p in ("train", "val", "test")]
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == len(IDS)
    assert all(split[p] == sorted(split[p]) for p in split)


def test_deterministic_and_order_free() -> None:
    a = make_split(IDS, seed=3)
    assert make_split(list(reversed(IDS)), seed=3) == a
    assert make_split(IDS, seed=4) != a


def test_val_from_train_never_from_test() -> None:
    with_val = make_split(IDS, seed=7)
    without_val = make_split(IDS, seed=7, val_fraction=0.0)
    assert with_val["test"] == without_val["test"]
    assert set(with_val["val"]) <= set(without_val["train"])


def test_small_and_bad_inputs() -> None:
    small = make_split([f"id{i}" for i in range(8)], seed=0)
    assert [len(small[p]) for p in ("train", "val", "test")] == [5, 1, 2]
    with pytest.raises(EGEUNetError, match="duplicate"):
        make_split(["a", "a", "b"], seed=0)
    with pytest.raises(EGEUNetError, match="need more images"):
        make_split(["a", "b"], seed=0)
    with pytest.raises(EGEUNetError, match="test_fraction"):
        make_split(IDS, seed=0, test_fraction=1.5)


def test_save_load_roundtrip(tmp_path: Path) -> None:
    split = make_split(IDS[:50], seed=1)
    save_split(tmp_path / "split.json", split)
    assert load_split(tmp_path / "split.json") == split
    assert list(json.loads((tmp_path / "split.json").read_text())) == ["train", "val", "test"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable JSON"),
        ('{"train": [], "test": []}', "needs exactly the keys"),
        ('{"train": ["a"], "val": [1], "test": []}', "list of id strings"),
        ('{"train": ["a"], "val": [], "test": ["a"]}', "id a is in both train and test"),
    ],
)
def test_bad_split_files(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "s.json").write_text(content)
    with pytest.raises(EGEUNetError, match=message) as info:
        load_split(tmp_path / "s.json")
    assert "s.json" in str(info.value)
    with pytest.raises(EGEUNetError, match="not found"):
        load_split(tmp_path / "absent.json")


def test_select_parts_and_unknown_id(tmp_path: Path) -> None:
    samples = [Sample(f"ISIC_{i:07d}", tmp_path / f"ISIC_{i:07d}.jpg", None) for i in range(20)]
    split = make_split([s.id for s in samples], seed=2)
    for part in ("train", "val", "test"):
        assert [s.id for s in select(samples, split, part)] == split[part]
    assert len(select(samples, split, "all")) == 20
    with pytest.raises(EGEUNetError, match="unknown split part"):
        select(samples, split, "holdout")
    with pytest.raises(EGEUNetError, match=r"my\.json: id ISIC_0000000 is not in the dataset"):
        select(samples[1:], {**split, "test": ["ISIC_0000000"]}, "test", source="my.json")
