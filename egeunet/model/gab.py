"""GAB: Group Aggregation Bridge (paper Fig. 3, spec "GAB").

Fuses a high-level feature, the matching encoder feature and the decoder's mask logit in four
groups with different dilation rates. Sub-module names follow the authors' release.
"""
from __future__ import annotations

import torch
from torch import nn

from egeunet.model.layers import LayerNorm2d, depthwise3x3, upsample_to


class GAB(nn.Module):
    """Group aggregation of (xh, xl, mask) -> L channels, L = channels of xl.

    ``use_mask=False`` and ``dilations=(1, 1, 1, 1)`` give the paper's Table 2(c) ablations.
    """

    def __init__(
        self, ch_high: int, ch_low: int, use_mask: bool = True, dilations: tuple[int, ...] = (1, 2, 5, 7)
    ) -> None:
        super().__init__()
        if ch_low % 4 or len(dilations) != 4:
            raise ValueError(f"GAB needs low-level channels divisible by 4 and 4 dilations, got {ch_low}, {dilations}")
        self.use_mask = use_mask
        group = ch_low // 2 + int(use_mask)
        self.pre_project = nn.Conv2d(ch_high, ch_low, 1)
        for i, d in enumerate(dilations):
            self.add_module(f"g{i}", nn.Sequential(LayerNorm2d(group), depthwise3x3(group, dilation=d)))
        self.tail_conv = nn.Sequential(LayerNorm2d(4 * group), nn.Conv2d(4 * group, ch_low, 1))

    def forward(self, xh: torch.Tensor, xl: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        xh = upsample_to(self.pre_project(xh), (xl.shape[2], xl.shape[3]))
        extra = [mask] if self.use_mask else []
        groups = [
            branch(torch.cat([h, l, *extra], dim=1))
            for branch, h, l in zip((self.g0, self.g1, self.g2, self.g3), xh.chunk(4, 1), xl.chunk(4, 1))
        ]
        return self.tail_conv(torch.cat(groups, dim=1))
