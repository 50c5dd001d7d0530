"""Small building blocks shared by GHPA, GAB and the network."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """Channels-first LayerNorm: per pixel, normalise across channels (biased variance), then affine.

    Written out instead of `F.layer_norm` on a permuted tensor so the graph stays NCHW; eps is 1e-6
    as in the authors' release.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


MIN_FOLD_SCALE = 0.05
"""The deploy form folds a LayerNorm's scale into the convolution after it only when every |scale| is at least this
(its shift is divided by the scale); the int8 fine-tuning simulation follows the same rule."""


INT8_MEAN_MAX = 8192
"""Longest reduction an int8 MEAN may take in an exported graph: LiteRT's XNNPACK gets longer int8 means wrong on x86
with AVX2 and without AVX-512 (``scripts/repro_xnnpack_mean.py`` under ``qemu-x86_64 -cpu Haswell``, ai-edge-litert
2.3.0: 0 of 256 constant inputs wrong at 8,200 values, 7 at 8,448, 128 from 16,384; the built-in kernel is exact)."""


def staged_group_mean(y: torch.Tensor, height: int) -> torch.Tensor:
    """Mean over the last two axes of N x G x (C/G * H) x W (kept dims), as MEANs of at most ``INT8_MEAN_MAX`` values
    each: over W, then over the rest (over H, then C/G, where C/G * H is longer). The same float function as one mean
    (equal-sized parts); the integer-only graph and its fine-tuning simulation both compute GroupNorm statistics so."""
    n, groups, rows, width = y.shape
    mean = y.mean(3, keepdim=True)
    if rows > INT8_MEAN_MAX:
        mean = mean.reshape(n, groups, rows // height, height).mean(3, keepdim=True)
    return mean.mean(2, keepdim=True)


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """Plain 3x3 convolution with bias, spatial size preserved."""
    return nn.Conv2d(cin, cout, 3, padding=1)


def depthwise3x3(channels: int, dilation: int = 1) -> nn.Conv2d:
    """Depthwise 3x3 convolution; padding equals dilation so the size is preserved."""
    return nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels)


def upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True, the only resize mode EGE-UNet uses (the same size is the identity)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def init_weights(module: nn.Module) -> None:
    """The authors' initialisation: He-normal on fan-out for convolutions, zero biases."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        fan_out = module.out_channels * int(torch.tensor(module.kernel_size).prod())
        if isinstance(module, nn.Conv2d):
            fan_out //= module.groups
        nn.init.normal_(module.weight, 0.0, (2.0 / fan_out) ** 0.5)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
