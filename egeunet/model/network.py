"""The EGE-UNet network: six encoder stages, five decoder stages, bridges and deep-supervision heads."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from egeunet.model.config import EGEUNetConfig
from egeunet.model.gab import GAB
from egeunet.model.ghpa import GHPA
from egeunet.model.layers import conv3x3, init_weights, upsample_to

SIZE_MULTIPLE = 32  # five 2x2 poolings


class Stage(nn.Module):
    """One block with its GroupNorm (absent on the bottleneck stage) and, on encoder stages, the 2x2 max pool."""

    def __init__(self, block: nn.Module, channels: int, norm: bool = True, pool: bool = False) -> None:
        super().__init__()
        self.block = block
        self.norm = nn.GroupNorm(4, channels) if norm else None
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.max_pool2d(x, 2, 2) if self.pool else x


def check_input_size(height: int, width: int) -> None:
    """Reject sizes the five poolings cannot halve exactly (zero and negative ones too), with the fix in the message."""
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or min(height, width) < SIZE_MULTIPLE:
        fix_h = max(SIZE_MULTIPLE, round(height / SIZE_MULTIPLE) * SIZE_MULTIPLE)
        fix_w = max(SIZE_MULTIPLE, round(width / SIZE_MULTIPLE) * SIZE_MULTIPLE)
        raise ValueError(
            f"input size {height}x{width} is not supported: height and width must be multiples of "
            f"{SIZE_MULTIPLE}: resize to {fix_h}x{fix_w} (the paper uses 256x256)"
        )


class EGEUNet(nn.Module):
    """EGE-UNet (Ruan et al., MICCAI 2023). ``EGEUNet()`` is the paper's 53,374-parameter model.

    ``forward(x)`` takes float N x 3 x H x W in [0, 255] (see ``egeunet.preprocess``) and returns
    foreground probabilities N x 1 x H x W. ``forward_logits(x)`` returns the final logit and the
    deep-supervision logits at input size, coarsest first, for training.
    """

    def __init__(self, config: EGEUNetConfig | None = None, **options) -> None:
        super().__init__()
        self.config = config or EGEUNetConfig(**options)
        cfg = self.config
        c = cfg.channels

        def block(cin: int, cout: int, stage: int) -> nn.Module:
            if cfg.block == "ghpa" and stage >= 3:
                return GHPA(cin, cout, multi_axis=cfg.ghpa_multi_axis, param_dw=cfg.ghpa_param_dw)
            return conv3x3(cin, cout)

        enc_in = (cfg.in_channels,) + c[:5]
        self.encoder = nn.ModuleList(Stage(block(enc_in[i], c[i], i), c[i], norm=i < 5, pool=i < 5) for i in range(6))
        # decoder stage i maps c[5-i] -> c[4-i]; stages 0-2 are the GHPA ones
        self.decoder = nn.ModuleList(Stage(block(c[5 - i], c[4 - i], 5 - i), c[4 - i]) for i in range(5))
        if cfg.bridge == "gab":
            self.bridges = nn.ModuleList(
                GAB(c[5 - i], c[4 - i], use_mask=cfg.gab_mask, dilations=cfg.gab_dilations) for i in range(5)
            )
        else:
            self.bridges = None
        self.heads = nn.ModuleList(nn.Conv2d(c[4 - i], 1, 1) for i in range(5)) if cfg.has_heads else None
        self.final = nn.Conv2d(c[0], 1, 1)
        self.apply(init_weights)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encoder, bridges and decoder without the last resize: the final logit at H/2 x W/2 and the head logits at
        their stages' sizes (no input check). The seam the deploy form and the int8 simulation run."""
        skips = []
        for stage in self.encoder:
            x = F.gelu(stage(x))
            skips.append(x)
        high = skips[5]
        head_logits = []
        for i, stage in enumerate(self.decoder):
            x = stage(x)
            if i > 0:
                x = upsample_to(x, (2 * x.shape[2], 2 * x.shape[3]))
            x = F.gelu(x)
            low = skips[4 - i]
            if self.bridges is None:
                x = x + low
                continue
            mask = None
            if self.heads is not None:
                mask = self.heads[i](x)
                head_logits.append(mask)
            high = self.bridges[i](high, low, mask)
            x = x + high
        return self.final(x), head_logits

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Final logit N x 1 x H x W and deep-supervision logits at input size (coarsest first)."""
        check_input_size(x.shape[-2], x.shape[-1])
        size = (x.shape[2], x.shape[3])
        final, heads = self.features(x)
        return upsample_to(final, size), [upsample_to(h, size) for h in heads]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x.shape[-2], x.shape[-1])
        final, _ = self.features(x)
        return torch.sigmoid(upsample_to(final, (x.shape[2], x.shape[3])))
