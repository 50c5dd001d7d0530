"""Parameter and multiply-accumulate counts, with the counting convention stated for each number."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

CONV_TYPES = (nn.Conv1d, nn.Conv2d)


@dataclass
class ModuleCost:
    """Cost of one named part of the network."""

    name: str
    params_all: int  # every tensor: weights, biases, norms, raw attention tensors
    params_conv: int  # convolution weights and biases only
    macs_conv: int  # multiply-accumulates of convolutions (incl. those on the attention tensors)
    macs_other: int  # GroupNorm/LayerNorm and bilinear resizes, one MAC per output element


def count_params(module: nn.Module) -> tuple[int, int]:
    """(all tensors, convolutions only) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    conv = sum(p.numel() for m in module.modules() if isinstance(m, CONV_TYPES) for p in m.parameters())
    return total, conv


def _conv_macs(module: nn.Module, out: torch.Tensor) -> int:
    k = int(torch.tensor(module.kernel_size).prod())
    per_sample = out.numel() // out.shape[0] if out.dim() == len(module.kernel_size) + 2 else out.numel()
    return per_sample * k * module.in_channels // module.groups


def profile(model: nn.Module, size: int = 256, parts: tuple[str, ...] = ("encoder", "decoder", "bridges", "heads", "final")) -> list[ModuleCost]:
    """Per-part costs for one 1 x C x size x size input (batch 1), counted with forward hooks."""
    macs: dict[nn.Module, list[int]] = {}

    def hook(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        if isinstance(module, CONV_TYPES):
            macs[module][0] += _conv_macs(module, out)
        else:
            macs[module][1] += out.numel() // out.shape[0]

    counted = [m for m in model.modules() if isinstance(m, CONV_TYPES + (nn.GroupNorm,)) or type(m).__name__ == "LayerNorm2d"]
    for m in counted:
        macs[m] = [0, 0]
    handles = [m.register_forward_hook(hook) for m in counted]
    resize_macs = [0]
    original = torch.nn.functional.interpolate

    def counting_interpolate(x, *args, **kwargs):
        y = original(x, *args, **kwargs)
        resize_macs[0] += y.numel() // y.shape[0]
        return y

    torch.nn.functional.interpolate = counting_interpolate
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, model.config.in_channels, size, size))
    finally:
        torch.nn.functional.interpolate = original
        for h in handles:
            h.remove()

    rows = []
    for part in parts:
        sub = getattr(model, part, None)
        if sub is None:
            continue
        children = list(sub.named_children()) if isinstance(sub, nn.ModuleList) else [("", sub)]
        for idx, child in children:
            conv = sum(macs[m][0] for m in child.modules() if m in macs)
            norm = sum(macs[m][1] for m in child.modules() if m in macs)
            rows.append(ModuleCost(f"{part}.{idx}".rstrip("."), *count_params(child), conv, norm))
    rows.append(ModuleCost("bilinear resizes", 0, 0, 0, resize_macs[0]))
    return rows
