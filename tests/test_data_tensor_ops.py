"""The per-image min-max stretch and mask targets, checked against hand-computed values."""
import torch

from egeunet.data.tensor_ops import mask_targets, minmax_stretch


def test_minmax_exact_values() -> None:
    x = torch.tensor([[[[10.0, 20.0]], [[30.0, 60.0]]]])  # 1 x 2 x 1 x 2, min 10 max 60 over all channels
    expected = (x - 10) / 50 * 255
    assert torch.equal(minmax_stretch(x), expected)
    assert minmax_stretch(x).flatten().tolist() == [0.0, 51.0, 102.0, 255.0]


def test_minmax_per_image_and_constant_image() -> None:
    batch = torch.stack([torch.full((3, 4, 4), 7.0), torch.arange(48.0).reshape(3, 4, 4)])
    out = minmax_stretch(batch)
    assert out.dtype == torch.float32
    assert torch.equal(out[0], torch.zeros(3, 4, 4))
    assert torch.equal(out[1], torch.arange(48.0).reshape(3, 4, 4) / 47 * 255)


def test_mask_targets_threshold() -> None:
    masks = torch.tensor([0, 1, 127, 128, 200, 255], dtype=torch.uint8)
    assert mask_targets(masks).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
