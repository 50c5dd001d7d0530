"""The preprocessing contract: resize then per-image min-max stretch, and its edge cases."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from egeunet import EGEUNetError, preprocess
from egeunet.preprocess import minmax_stretch, stretch_array


def _rgb(h=90, w=120, seed=0):
    return np.random.default_rng(seed).integers(20, 200, (h, w, 3), dtype=np.uint8)


def test_output_contract_and_stretch_values():
    image = _rgb()
    x = preprocess(image, size=64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 255.0
    resized = cv2.resize(image.astype(np.float32), (64, 64), interpolation=cv2.INTER_LINEAR)
    lo, hi = resized.min(), resized.max()
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), (resized - lo) / (hi - lo) * 255, rtol=0, atol=1e-4)


def test_image_at_model_size_is_only_stretched():
    image = _rgb(64, 64)
    x = preprocess(image, size=64)[0].transpose(1, 2, 0)
    f = image.astype(np.float32)
    np.testing.assert_array_equal(x, (f - f.min()) / (f.max() - f.min()) * np.float32(255))


def test_grayscale_is_replicated_to_three_channels():
    gray = _rgb()[:, :, 0]
    for image in (gray, gray[:, :, None]):
        x = preprocess(image, size=32)
        assert x.shape == (1, 3, 32, 32)
        assert np.array_equal(x[0, 0], x[0, 1]) and np.array_equal(x[0, 1], x[0, 2])


def test_rgba_drops_alpha():
    image = _rgb()
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 7, np.uint8)], axis=2)
    assert np.array_equal(preprocess(rgba, 32), preprocess(image, 32))


def test_16bit_gives_the_same_input_as_8bit():
    image = _rgb()
    wide = image.astype(np.uint16) * 257  # the same picture in 16 bits
    np.testing.assert_allclose(preprocess(wide, 32), preprocess(image, 32), atol=1e-3)


def test_bgr_from_opencv_needs_channel_order(tmp_path):
    image = _rgb()
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, image[:, :, ::-1])  # store as RGB on disk
    bgr = cv2.imread(path)
    assert np.array_equal(preprocess(bgr, 32, channel_order="bgr"), preprocess(image, 32))
    assert not np.array_equal(preprocess(bgr, 32), preprocess(image, 32))


def test_constant_image_maps_to_zero_and_batches_stack():
    flat = np.full((40, 40, 3), 9, np.uint8)
    assert not preprocess(flat, 32).any()
    batch = np.stack([_rgb(40, 40, 1), _rgb(40, 40, 2)])
    x = preprocess(batch, 32)
    assert x.shape == (2, 3, 32, 32)
    assert np.array_equal(x[1:], preprocess(batch[1], 32))


def test_torch_stretch_is_the_same_arithmetic_bit_for_bit():
    x = torch.rand(3, 3, 8, 8) * 100 + 5
    x[2] = 7.0  # a constant image
    y = minmax_stretch(x)
    assert torch.equal(y.amin((1, 2, 3)), torch.zeros(3)) and torch.equal(y.amax((1, 2, 3))[:2], torch.full((2,), 255.0))
    assert np.array_equal(y.numpy(), stretch_array(x.numpy()))


def test_runtimes_other_than_pytorch_do_not_load_torch():
    """The benchmark measures each runtime's memory in its own process: torch must not be in it."""
    code = ("import sys, egeunet, egeunet.preprocess, egeunet.data.imageio, egeunet.benchmark.probe, "
            "egeunet.runtime.runners.onnx_runner, egeunet.runtime.runners.litert_runner, "
            "egeunet.runtime.runners.coreml_runner; import numpy as np; "
            "egeunet.preprocess(np.zeros((40, 50, 3), np.uint8)); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("bad", [np.zeros((5, 5, 2)), np.zeros((0, 4, 3)), np.array([["a"]])])
def test_bad_arrays_get_one_line_errors(bad):
    with pytest.raises(EGEUNetError) as info:
        preprocess(bad)
    assert "\n" not in str(info.value)
