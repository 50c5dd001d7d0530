"""Batched augmentation: identical for image and mask, per-sample angles, forced flips, reproducible."""
import math

import torch

from egeunet.data.augment import augment_batch, rotate_nearest


def _pattern(n: int = 4, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """An asymmetric image (distinct value per pixel) and a mask marking the top-left quadrant."""
    image = torch.arange(3 * size * size, dtype=torch.float32).reshape(1, 3, size, size).repeat(n, 1, 1, 1)
    mask = torch.zeros(n, 1, size, size)
    mask[:, :, : size // 2, : size // 2] = 1
    return image, mask


def test_forced_horizontal_and_vertical_flip() -> None:
    image, mask = _pattern()
    gen = torch.Generator().manual_seed(0)
    out, out_mask = augment_batch(image, mask, gen, p_hflip=1, p_vflip=0, p_rotate=0)
    assert torch.equal(out, image.flip(-1)) and torch.equal(out_mask, mask.flip(-1))
    out, out_mask = augment_batch(image, mask, gen, p_hflip=0, p_vflip=1, p_rotate=0)
    assert torch.equal(out, image.flip(-2)) and torch.equal(out_mask, mask.flip(-2))
    out, out_mask = augment_batch(image, mask, gen, p_hflip=0, p_vflip=0, p_rotate=0)
    assert torch.equal(out, image) and torch.equal(out_mask, mask)


def test_rotation_by_quarter_turn_is_exact() -> None:
    image, _ = _pattern(n=1)
    quarter = rotate_nearest(image, torch.tensor([math.pi / 2]))
    assert torch.equal(quarter, torch.rot90(image, k=1, dims=(-2, -1)))
    wide = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 1, 4, 6)
    assert torch.equal(rotate_nearest(wide, torch.tensor([math.pi, 0.0])), torch.stack([wide[0].flip(-1, -2), wide[1]]))


def test_image_and_mask_move_together() -> None:
    size = 32
    n = 16
    image = torch.zeros(n, 3, size, size)
    image[:, :, 4:14, 6:20] = 200.0
    mask = (image[:, :1] > 0).float()
    gen = torch.Generator().manual_seed(1)
    out, out_mask = augment_batch(image, mask, gen, p_hflip=0.5, p_vflip=0.5, p_rotate=1.0)
    assert set(out_mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out_mask, (out[:, :1] > 0).float())  # every moved pixel kept its label
    assert torch.equal(out[:, 0], out[:, 2])


def test_fresh_angle_per_sample_and_reproducible() -> None:
    image, mask = _pattern(n=8, size=16)
    image = image + 1  # no zero pixels, so the zero fill shows where the corners went

    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return augment_batch(image, mask, torch.Generator().manual_seed(seed), 0, 0, 1)

    first, first_mask = run(3)
    again, again_mask = run(3)
    assert torch.equal(first, again) and torch.equal(first_mask, again_mask)
    assert not torch.equal(first, run(4)[0])
    zero_counts = {int((first[i] == 0).sum()) for i in range(8)}
    assert len(zero_counts) > 3, "samples share one rotation angle"
