"""load_model: own and authors' formats, safe loading, one-line errors naming the file."""
from __future__ import annotations

import collections
import os

import pytest
import torch

from egeunet import EGEUNet, EGEUNetError, load_model, save_checkpoint, variant_config
from egeunet.atomic import atomic_write
from egeunet.checkpoint import read_checkpoint
from tests.conftest import perturb_


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_own_checkpoint_roundtrip_is_self_describing(tmp_path):
    model = perturb_(EGEUNet(variant_config("no-dilation", channels=(4, 8, 12, 16, 24, 32))))
    path = tmp_path / "run" / "best.pt"
    save_checkpoint(path, model, input_size=128, training={"epochs": 3, "lr": 1e-3}, metrics={"miou": 0.5}, epoch=3)
    loaded, meta = load_model(path, with_meta=True)
    assert not loaded.training
    assert loaded.config == model.config and _same_weights(loaded, model)
    assert meta["input_size"] == 128 and meta["metrics"]["miou"] == 0.5 and meta["epoch"] == 3
    assert meta["preprocessing"]["threshold"] == 0.5
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temporary file left behind


def test_authors_latest_pth_with_model_state_dict(tmp_path, reference_dir):
    official = torch.load(reference_dir / "best.pth", weights_only=True)
    latest = tmp_path / "latest.pth"
    torch.save({"epoch": 7, "min_loss": 0.3, "model_state_dict": official, "optimizer_state_dict": {}}, latest)
    model, meta = load_model(latest, with_meta=True)
    assert _same_weights(model, load_model(reference_dir / "best.pth"))
    assert meta["source"] == "authors' release" and meta["epoch"] == 7


def test_plain_state_dict_of_this_package_loads(tmp_path):
    model = perturb_(EGEUNet())
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    assert _same_weights(load_model(tmp_path / "weights.pth"), model)


def _one_line_error(path, *fragments):
    with pytest.raises(EGEUNetError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_file(tmp_path):
    _one_line_error(tmp_path / "nope.pt", "no such file")


def test_truncated_checkpoint(tmp_path, reference_dir):
    data = (reference_dir / "best.pth").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: len(data) // 2])
    _one_line_error(path, "truncated or corrupt")


def test_empty_and_garbage_files(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    _one_line_error(tmp_path / "empty.pt", "empty file")
    (tmp_path / "image.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    _one_line_error(tmp_path / "image.pt", "not")
    (tmp_path / "notes.pt").write_text("hello world\n")
    _one_line_error(tmp_path / "notes.pt", "not a readable PyTorch checkpoint")


def test_file_that_is_not_a_checkpoint(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    _one_line_error(tmp_path / "tensor.pt", "not a checkpoint")
    torch.save({"lr": 0.1, "name": "x"}, tmp_path / "dict.pt")
    _one_line_error(tmp_path / "dict.pt", "not an EGE-UNet checkpoint")


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state": collections.Counter(a=1), "f": os.system}, path)
    _one_line_error(path, "refused to load")


def test_state_dict_of_another_architecture(tmp_path, reference_dir):
    official = torch.load(reference_dir / "best.pth", weights_only=True)
    del official["GAB1.tail_conv.1.bias"]
    del official["GAB2.g0.0.weight"]
    official["extra.weight"] = torch.zeros(1)
    path = tmp_path / "other.pth"
    torch.save(official, path)
    message = _one_line_error(path, "missing keys", "unexpected keys extra.weight", "bridges.4.tail_conv.1.bias")
    assert "does not match EGE-UNet" in message
    conv = torch.nn.Conv2d(3, 8, 3)
    torch.save({f"layer{i}.weight": conv.weight for i in range(6)}, path)
    _one_line_error(path, "missing keys", "and ", "more")


def test_atomic_write_keeps_previous_file_on_failure(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"old")

    def failing(tmp):
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, failing)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_read_checkpoint_uses_weights_only(tmp_path):
    save_checkpoint(tmp_path / "a.pt", EGEUNet())
    assert read_checkpoint(tmp_path / "a.pt")["format"] == "egeunet-checkpoint"
