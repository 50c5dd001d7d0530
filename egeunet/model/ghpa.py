"""GHPA: Group multi-axis Hadamard Product Attention (paper Algorithm 1, spec "GHPA").

Sub-module names follow the authors' release (params_xy, conv_xy, dw, norm1, ldw, ...) so their
checkpoints map onto this module one to one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from egeunet.model.layers import LayerNorm2d, depthwise3x3, upsample_to

PARAM_GRID = 8  # learnable attention tensors are 8 wide per spatial axis, then resized


def _axis_dw(channels: int) -> nn.Sequential:
    """1-D depthwise k3 -> GELU -> 1x1 along one spatial axis (the "DW" on a channel-axis tensor)."""
    return nn.Sequential(
        nn.Conv1d(channels, channels, 3, padding=1, groups=channels),
        nn.GELU(),
        nn.Conv1d(channels, channels, 1),
    )


def _plane_dw(channels: int) -> nn.Sequential:
    """Depthwise 3x3 -> GELU -> pointwise 1x1 on the height-width tensor."""
    return nn.Sequential(depthwise3x3(channels), nn.GELU(), nn.Conv2d(channels, channels, 1))


class GHPA(nn.Module):
    """Grouped Hadamard-product attention on the (H,W), (C,H) and (C,W) axes, then a DW mixer.

    Options give the paper's Table 2(b) ablations: ``multi_axis=False`` applies a single
    height-width HPA to all channels; ``param_dw=False`` multiplies by the resized tensors directly.
    The three attention maps depend on weights only; in eval mode without autograd they are
    computed once per input size and reused until a weight changes or ``train()`` is called.
    """

    def __init__(self, cin: int, cout: int, multi_axis: bool = True, param_dw: bool = True) -> None:
        super().__init__()
        if cin % 4:
            raise ValueError(f"GHPA needs input channels divisible by 4, got {cin}")
        self.multi_axis = multi_axis
        c = cin // 4 if multi_axis else cin
        self.params_xy = nn.Parameter(torch.ones(1, c, PARAM_GRID, PARAM_GRID))
        self.conv_xy = _plane_dw(c) if param_dw else None
        if multi_axis:
            self.params_zx = nn.Parameter(torch.ones(1, 1, c, PARAM_GRID))
            self.conv_zx = _axis_dw(c) if param_dw else None
            self.params_zy = nn.Parameter(torch.ones(1, 1, c, PARAM_GRID))
            self.conv_zy = _axis_dw(c) if param_dw else None
            self.dw = nn.Sequential(nn.Conv2d(c, c, 1), nn.GELU(), depthwise3x3(c))
        self.norm1 = LayerNorm2d(cin)
        self.norm2 = LayerNorm2d(cin)
        self.ldw = nn.Sequential(depthwise3x3(cin), nn.GELU(), nn.Conv2d(cin, cout, 1))
        self._cache: tuple[tuple, list[torch.Tensor]] | None = None

    def attention_maps(self, height: int, width: int) -> list[torch.Tensor]:
        """The weight-only multipliers: (1,c,H,W) for xy, (1,c,H,1) for zx and (1,c,1,W) for zy."""
        xy = upsample_to(self.params_xy, (height, width))
        if self.conv_xy is not None:
            xy = self.conv_xy(xy)
        if not self.multi_axis:
            return [xy]
        maps = [xy]
        for params, conv, length in ((self.params_zx, self.conv_zx, height), (self.params_zy, self.conv_zy, width)):
            m = upsample_to(params, (params.shape[2], length))[0]  # (1, c, length)
            if conv is not None:
                m = conv(m)
            maps.append(m)
        zx, zy = maps[1], maps[2]
        return [xy, zx[..., :, None], zy[..., None, :]]

    def _cached_maps(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
        """Reuse the maps while no weight changed (parameter versions and storage are the key); never while a graph
        is captured (torch.export, torch.compile: traced tensors have no storage to key on)."""
        if self.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
            self._cache = None
            return self.attention_maps(height, width)
        key = (height, width, device, dtype) + tuple((p._version, p.data_ptr()) for p in self.parameters())
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.attention_maps(height, width))
        return self._cache[1]

    def train(self, mode: bool = True) -> "GHPA":
        self._cache = None
        return super().train(mode)

    def _branches(self, groups: tuple[torch.Tensor, ...], maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """The four groups after their attention: three Hadamard products and the DW branch (a hook for subclasses
        that compute them on other grids)."""
        g1, g2, g3, g4 = groups
        return [g1 * maps[0], g2 * maps[1], g3 * maps[2], self.dw(g4)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        maps = self._cached_maps(x.shape[2], x.shape[3], x.device, x.dtype)
        if not self.multi_axis:
            x = x * maps[0]
        else:
            x = torch.cat(self._branches(torch.chunk(x, 4, dim=1), maps), dim=1)
        return self.ldw(self.norm2(x))
