"""Architecture options of EGE-UNet and the paper's Table 2 variants as named presets."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class EGEUNetConfig:
    """Everything needed to rebuild the network; stored in every egeunet checkpoint.

    block: "ghpa" (stages 4-6 use GHPA) or "conv" (plain 3x3 convolutions everywhere).
    bridge: "gab" (group aggregation bridges with deep-supervision heads) or "skip" (plain add).
    """

    channels: tuple[int, ...] = (8, 16, 24, 32, 48, 64)
    in_channels: int = 3
    block: str = "ghpa"
    bridge: str = "gab"
    ghpa_multi_axis: bool = True
    ghpa_param_dw: bool = True
    gab_mask: bool = True
    gab_dilations: tuple[int, ...] = field(default=(1, 2, 5, 7))

    def __post_init__(self) -> None:
        if len(self.channels) != 6:
            raise ValueError(f"EGE-UNet has 6 stages: channels needs 6 numbers, got {self.channels}")
        if self.block not in ("ghpa", "conv") or self.bridge not in ("gab", "skip"):
            raise ValueError(f"block must be 'ghpa' or 'conv' and bridge 'gab' or 'skip', got {self.block!r}, {self.bridge!r}")
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "gab_dilations", tuple(self.gab_dilations))

    @property
    def has_heads(self) -> bool:
        """Deep-supervision heads exist only to feed GAB masks (so the paper's counts hold)."""
        return self.bridge == "gab" and self.gab_mask

    def to_dict(self) -> dict:
        """JSON-friendly form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "EGEUNetConfig":
        """Inverse of to_dict; unknown keys are an error so a foreign file is not half-read."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown architecture options {unknown}")
        return cls(**data)


# The paper's Table 2 rows: name -> options that differ from the full model (params at 256^2).
VARIANTS: dict[str, dict] = {  # parameters, all tensors, here: the comments
    "egeunet": {},  # 53,374
    "baseline": {"block": "conv", "bridge": "skip"},  # 107,041
    "baseline+ghpa": {"bridge": "skip"},  # 34,273
    "baseline+gab": {"block": "conv"},  # 126,142
    "no-multi-axis": {"ghpa_multi_axis": False},  # 73,526
    "no-param-dw": {"ghpa_param_dw": False},  # 49,948
    "no-mask": {"gab_mask": False},  # 52,449
    "no-dilation": {"gab_dilations": (1, 1, 1, 1)},  # 53,374
}
PAPER_PARAMS = {"egeunet": "0.053M", "baseline": "0.107M", "baseline+ghpa": "0.034M", "baseline+gab": "0.126M",
                "no-multi-axis": "0.074M", "no-param-dw": "0.050M", "no-mask": "0.052M",
                "no-dilation": "0.053M"}  # Table 2's parameter counts


def paper_params(config: EGEUNetConfig) -> str | None:
    """Table 2's parameter count of the variant ``config`` is ("0.107M"), None for a config that is no Table 2 variant
    (other channels, say), so a label never quotes the paper for a model it did not measure."""
    return next((PAPER_PARAMS[name] for name in VARIANTS if variant_config(name) == config), None)


def variant_config(name: str, **overrides) -> EGEUNetConfig:
    """Config of a named Table 2 variant, with optional overrides such as channels."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return EGEUNetConfig(**{**VARIANTS[name], **overrides})
