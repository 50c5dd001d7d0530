"""Key layout of the authors' EGE-UNet release and its mapping onto this package's module names."""
from __future__ import annotations

import re

import torch

# (authors' prefix pattern, our prefix) - stage numbers are 1-based there, 0-based here;
# GAB k bridges decoder stage 5-k, so GAB5 is our bridges.0.
_PREFIXES = (
    (r"encoder(\d)\.0\.", lambda k: f"encoder.{k - 1}.block."),
    (r"ebn(\d)\.", lambda k: f"encoder.{k - 1}.norm."),
    (r"decoder(\d)\.0\.", lambda k: f"decoder.{k - 1}.block."),
    (r"dbn(\d)\.", lambda k: f"decoder.{k - 1}.norm."),
    (r"GAB(\d)\.", lambda k: f"bridges.{5 - k}."),
    (r"gt_conv(\d)\.0\.", lambda k: f"heads.{k - 1}."),
)
_RULES = [(re.compile(pattern), to) for pattern, to in _PREFIXES]


def is_official_state_dict(state: dict) -> bool:
    """True when the keys look like the authors' release (e.g. ``ebn1.weight``, ``GAB5.*``)."""
    return "ebn1.weight" in state or any(k.startswith(("GAB", "encoder1.0.")) for k in state)


def from_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the authors' keys to ours; keys that match no rule (``final.*``) keep their name."""
    out = {}
    for key, value in state.items():
        for pattern, to in _RULES:
            m = pattern.match(key)
            if m:
                key = to(int(m.group(1))) + key[m.end():]
                break
        out[key] = value
    return out


def official_channels(state: dict[str, torch.Tensor]) -> tuple[int, ...] | None:
    """Stage widths read from the GroupNorm and bottleneck shapes, so narrow/wide variants load."""
    try:
        widths = [int(state[f"ebn{k}.weight"].shape[0]) for k in range(1, 6)]
        widths.append(int(state["GAB5.pre_project.weight"].shape[1]))
    except KeyError:
        return None
    return tuple(widths)
