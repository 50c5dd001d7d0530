"""The deploy form: EGE-UNet as one fixed-size, eval-only function that converters and quantizers map cleanly.

Same numbers as ``EGEUNet.forward`` (to float rounding) at one input size, rewritten for export:
- only the final probability map is computed (deep-supervision heads stay only where GAB needs them);
- each GHPA's weight-only attention maps are folded into constant buffers, one multiply per group;
- LayerNorm is ``(x - mean) * rsqrt(var + eps)``: an int8 DIV crashes the TFLite interpreter;
- a LayerNorm's scale (and shift, before a 1x1 convolution) is folded into the convolution that reads it;
- GAB's group inputs (chunks, concatenation, norm) are one float module, so int8 graphs dequantize each feature once;
- ``for_litert`` gives LiteRT a written-out GroupNorm (fewer ops) and GHPA maps computed in the graph; its float
  graphs also pool before the GroupNorm affine, run the first stage on its pool phases and write GAB's norms as
  fixed 1x1 convolutions;
- optional front and back: baked preprocessing (uint8 RGB in, min-max stretch in the graph) and NHWC I/O.

The int8 fine-tuning simulation (``egeunet.training.qat``) runs these same modules: a ``live`` form shares the model's
parameters and recomputes every tensor derived from them (folds, maps, norm affines) on ``refresh``, with gradients,
and the modules call ``rounding()`` where the integer-only graph rounds a constant or puts outputs on a
concatenation's grid (this module's ``Rounding`` rounds nothing).
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from egeunet.model import GAB, GHPA, EGEUNet, LayerNorm2d, check_input_size
from egeunet.model.ghpa import PARAM_GRID
from egeunet.model.layers import MIN_FOLD_SCALE, staged_group_mean, upsample_to


class Rounding:
    """Where an int8 simulation of the deploy form rounds (``egeunet.training.qat``); this one, the default, rounds
    nothing, so the deploy form computes in float."""

    def constant(self, value: torch.Tensor) -> torch.Tensor:
        """A constant operand of the graph (a norm's affine or folded shift, an attention map, a map parameter)."""
        return value

    def concat_inputs(self) -> contextlib.AbstractContextManager:
        """A block whose outputs feed one concatenation: those no other op reads are on the concatenation's grid."""
        return contextlib.nullcontext()


_ROUNDING: list[Rounding] = [Rounding()]


def rounding() -> Rounding:
    """The rounding the deploy modules apply now (none, unless ``rounded_by`` set one)."""
    return _ROUNDING[-1]


@contextlib.contextmanager
def rounded_by(hook: Rounding) -> Iterator[None]:
    """Deploy modules round with ``hook`` while the block runs."""
    _ROUNDING.append(hook)
    try:
        yield
    finally:
        _ROUNDING.pop()


Derivation = Callable[[], dict[str, "torch.Tensor | None"]]  # tensors of a module from the model's parameters


def _assign(module: nn.Module, values: dict[str, torch.Tensor | None], frozen: bool) -> None:
    """Set ``module``'s tensors: ``frozen``, a parameter stays a parameter; live, every one is a buffer (a tensor with
    gradients from the model's parameters cannot be a parameter)."""
    parameters = dict(module.named_parameters(recurse=False))
    for name, value in values.items():
        if frozen and name in parameters:
            setattr(module, name, nn.Parameter(value))
            continue
        if name in parameters:
            delattr(module, name)
        module.register_buffer(name, value)


def _derive(module: nn.Module, recipe: Derivation) -> None:
    """Set ``module``'s tensors to what ``recipe`` computes from the model's parameters (now, in float, as copies), and
    keep the recipe: a live form recomputes them on every ``refresh``; a frozen one drops it."""
    with torch.no_grad():
        _assign(module, {k: None if v is None else v.detach().clone() for k, v in recipe().items()}, frozen=True)
    module.__dict__["_recipe"] = recipe


def _drop_recipes(root: nn.Module) -> None:
    """Freeze a form's derived tensors for good: no reference to the model's modules is kept."""
    for module in root.modules():
        module.__dict__.pop("_recipe", None)


def _share_copy(module: nn.Module, share: bool) -> nn.Module:
    """A deep copy of ``module``; with ``share``, one whose parameters are the very same tensors (a live form)."""
    return copy.deepcopy(module, {id(p): p for p in module.parameters()} if share else None)


def _channels(value: torch.Tensor) -> torch.Tensor:
    """A per-channel vector as a (1,C,1,1) operand."""
    return value.view(1, -1, 1, 1)


class RsqrtLayerNorm(nn.Module):
    """Channels-first LayerNorm with a multiply by rsqrt instead of a divide; affine as (1,C,1,1) constants.

    ``fold_into(conv)`` moves the scale (and, for a 1x1 convolution, the shift) into the convolution that reads this
    norm, leaving fewer ops in the graph; a weight then becomes None."""

    def __init__(self, norm: LayerNorm2d) -> None:
        super().__init__()
        _derive(self, lambda: {"weight": _channels(norm.weight), "bias": _channels(norm.bias)})
        self.eps = norm.eps
        self.channels = norm.weight.numel()
        self.mean_conv: nn.Conv2d | None = None  # the channel mean as a 1x1 convolution (``for_executorch``), and
        self.var_conv: nn.Conv2d | None = None  # the variance plus eps as one with bias eps

    def fold_into(self, conv: nn.Conv2d) -> bool:
        """Fold the scale into ``conv``'s input channels (exact with any padding: the shift is kept as bias/scale,
        so zero padding still means a zero norm output), and the shift too when ``conv`` is 1x1 without padding.
        Skipped (False) when a scale is below ``MIN_FOLD_SCALE`` in magnitude, where bias/scale would blow up."""
        depthwise = conv.groups == conv.in_channels == conv.out_channels
        if self.weight is None or (conv.groups != 1 and not depthwise) \
                or self.weight.abs().min() < MIN_FOLD_SCALE:
            return False
        frozen = {"weight": self.weight, "bias": self.bias}
        affine, weight, bias = self.__dict__.get("_recipe", lambda: frozen), conv.weight, conv.bias
        shift_too = conv.kernel_size == (1, 1) and conv.padding in ((0, 0), 0) and conv.groups == 1

        def folded_conv() -> dict[str, torch.Tensor]:
            norm = affine()
            scale = norm["weight"].flatten()
            out = {"weight": weight * (scale.view(-1, 1, 1, 1) if depthwise else scale.view(1, -1, 1, 1))}
            if shift_too:
                shift = weight.flatten(1) @ norm["bias"].flatten()
                out["bias"] = shift if bias is None else bias + shift
            return out

        def left() -> dict[str, torch.Tensor | None]:
            norm = affine()
            return {"weight": None, "bias": None if shift_too else norm["bias"] / norm["weight"]}

        _derive(conv, folded_conv)
        _derive(self, left)
        return True

    def as_convolutions(self, dtype: torch.dtype) -> None:
        """Channel means as 1x1 convolutions with weights 1/C, the variance's eps as the second one's bias
        (``for_executorch``: XNNPACK takes no MEAN over channels). The affine stays a multiply and an add: as a
        depthwise 1x1 convolution it ran slower in XNNPACK."""
        weight = torch.full((1, self.channels), 1.0 / self.channels, dtype=dtype)
        self.mean_conv, self.var_conv = _fixed_conv(weight), _fixed_conv(weight, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean_conv is None:
            centred = x - x.mean(1, keepdim=True)
            y = centred * torch.rsqrt((centred * centred).mean(1, keepdim=True) + self.eps)
        else:
            centred = x - self.mean_conv(x)
            y = centred * torch.rsqrt(self.var_conv(centred * centred))
        if self.weight is not None:
            y = y * rounding().constant(self.weight)
        return y + rounding().constant(self.bias) if self.bias is not None else y


class RsqrtGroupNorm(nn.Module):
    """GroupNorm written out as ``(x - mean) * rsqrt(var + eps)`` over N x G x (C/G * H) x W, then the per-channel
    affine. Each statistic is a staged mean (``staged_group_mean``: over W, then the rest), so no int8 MEAN reduces
    more than ``INT8_MEAN_MAX`` values: one MEAN over a 128 x 128 group (131,072 values) returned the top of its
    int8 range on XNNPACK's AVX2 kernels. A channels-last form was smaller but 1.4x slower end to end: XNNPACK does
    not take a MEAN over channel axes, so LiteRT falls back to its reference kernel."""

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.groups, self.eps = norm.num_groups, norm.eps
        _derive(self, lambda: {"weight": _channels(norm.weight), "bias": _channels(norm.bias)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = x.reshape(n, self.groups, c // self.groups * h, w)
        centred = y - staged_group_mean(y, h)
        y = centred * torch.rsqrt(staged_group_mean(centred * centred, h) + self.eps)
        return y.reshape(n, c, h, w) * rounding().constant(self.weight) + rounding().constant(self.bias)


def _last_conv(block: nn.Module) -> nn.Conv2d:
    """The convolution that produces a stage block's output (a plain 3x3 convolution, or a GHPA's last 1x1)."""
    return block if isinstance(block, nn.Conv2d) else block.ldw[-1]


def _spatial_stats(x: torch.Tensor, staged: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel spatial mean and centred variance (N x C x 1 x 1), each mean over rows, then columns (``staged``)
    or one mean over both (ExecuTorch's XNNPACK takes a MEAN over both spatial axes only)."""
    def mean(y: torch.Tensor) -> torch.Tensor:
        return y.mean(3, keepdim=True).mean(2, keepdim=True) if staged else y.mean((2, 3), keepdim=True)

    centre = mean(x)
    centred = x - centre
    return centre, mean(centred * centred)


def _combined_stats(mean: torch.Tensor, var: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the union of equal-sized parts, from each part's mean and variance along ``dim``
    (law of total variance, kept dims): no one-pass cancellation."""
    total_mean = mean.mean(dim, keepdim=True)
    spread = mean - total_mean
    return total_mean, (var + spread * spread).mean(dim, keepdim=True)


class StatsGroupNorm(nn.Module):
    """GroupNorm from per-channel spatial statistics, as one multiply-add per channel; with ``pool`` the stage's 2x2
    max pool runs before that multiply-add, on a quarter of the pixels (LiteRT float graphs; ``for_onnx``).

    Channel means and centred variances are spatial MEANs, which XNNPACK runs on NHWC without the transposes a
    grouped reshape needs; they combine into group statistics on N x C values (law of total variance, no one-pass
    cancellation). Each mean is taken over rows, then columns: sums of 256 values instead of 65,536 (one MEAN over
    both axes put 4e-5 to 6e-5 of rounding on LiteRT's probabilities, 3e-6 this way). Pooling first is exact once
    every channel's scale is positive: ``fold_signs`` flips the channels whose GroupNorm weight is negative in the
    convolution before, and the statistics flip them back."""

    def __init__(self, norm: nn.GroupNorm, pool: bool = False) -> None:
        super().__init__()
        self.groups, self.eps, self.pool = norm.num_groups, norm.eps, pool
        self.register_buffer("weight", norm.weight.detach().clone().view(1, -1, 1, 1))
        self.register_buffer("bias", norm.bias.detach().clone().view(1, -1, 1, 1))
        self.register_buffer("sign", torch.ones_like(self.weight))

    def fold_signs(self, conv: nn.Conv2d) -> None:
        """Negate ``conv``'s output channels whose weight is negative (this norm then reads them negated)."""
        sign = 1 - 2 * (self.weight < 0).to(self.weight.dtype)
        with torch.no_grad():
            conv.weight.mul_(sign.view(-1, 1, 1, 1))
            if conv.bias is not None:
                conv.bias.mul_(sign.flatten())
        self.sign = sign

    def affine(self, mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel scale and shift (N x C x 1 x 1) for channel statistics of the input as it arrives."""
        n, c = mean.shape[:2]
        var = var.reshape(n, self.groups, -1)
        mean = (mean * self.sign).reshape(n, self.groups, -1)  # the channels as the model computes them
        group_mean, group_var = _combined_stats(mean, var, 2)
        inv_std = torch.rsqrt(group_var + self.eps)
        scale = (self.weight.reshape(1, self.groups, -1) * inv_std).reshape(n, c, 1, 1)
        shift = self.bias - (scale.reshape(n, self.groups, -1) * group_mean).reshape(n, c, 1, 1)
        return scale * self.sign, shift

    def affine_of(self, x: torch.Tensor, phases: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The scale and shift for ``x``, whose channels are ``phases`` equal-sized blocks of this norm's channels
        (``PhaseConvStage``: one per pool phase)."""
        if phases == 1:
            return self.affine(*_spatial_stats(x))
        n, c = x.shape[0], x.shape[1] // phases
        mean, var = (s.reshape(n, phases, c) for s in _spatial_stats(x))
        return self.affine(*(s.reshape(n, c, 1, 1) for s in _combined_stats(mean, var, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.affine_of(x)
        if self.pool:
            x = F.max_pool2d(x, 2, 2)
        return x * scale + shift


class ConvGroupAffine(nn.Module):
    """A GroupNorm's per-channel scale and shift for ``x`` (N x C x 1 x 1 each), its group statistics from fixed 1x1
    convolutions on the channel statistics (ExecuTorch): no reshape, so XNNPACK, which runs NHWC, puts no transposes
    around it (243 of the fp32 program's 1,004 nodes were transposes around the grouped reshapes). Convolutions to G
    channels average each group (with the channel signs ``fold_signs`` flipped); ones back to C channels hand each
    channel its group's mean (in its sign) and its scale (GroupNorm weight times the reciprocal root: rsqrt on G
    values); eps and the GroupNorm bias are biases. Each channel statistic is one MEAN over both spatial axes (the
    only reduction XNNPACK takes). ``phases``: ``x``'s channels are that many blocks of C (``PhaseConvStage``), each
    with as many pixels."""

    def __init__(self, norm: StatsGroupNorm, phases: int = 1) -> None:
        super().__init__()
        c, groups, dtype = norm.weight.numel(), norm.groups, norm.weight.dtype
        self.phases, self.channels = phases, c
        member = torch.zeros(groups, phases * c, dtype=dtype)
        member[torch.arange(phases * c) % c // (c // groups), torch.arange(phases * c)] = 1.0
        sign = norm.sign.flatten().repeat(phases)
        count = phases * c // groups
        self.group_mean = _fixed_conv(member * sign / count)  # P*C -> G: the group means the model computes
        self.signed_mean = _fixed_conv(member.T * sign[:, None])  # G -> P*C: each channel's, in its sign
        self.group_var = _fixed_conv(member / count, norm.eps)  # P*C -> G: variance + eps
        self.scale = _fixed_conv(member[:, :c].T * (norm.weight * norm.sign).view(c, 1))  # G -> C: scale, signed
        self.shift = nn.Conv2d(c, c, 1, groups=c, dtype=dtype)  # bias - scale * mean, depthwise
        with torch.no_grad():
            self.shift.weight.fill_(-1.0)
            self.shift.bias.copy_(norm.bias.flatten())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = _spatial_stats(x, staged=False)
        signed = self.signed_mean(self.group_mean(mean))
        spread = mean - signed
        scale = self.scale(torch.rsqrt(self.group_var(var + spread * spread)))
        centre = signed[:, :self.channels] if self.phases > 1 else signed
        return scale, self.shift(scale * centre)


class ConvStatsGroupNorm(nn.Module):
    """``StatsGroupNorm`` with its scale and shift from ``ConvGroupAffine`` (``for_executorch``); a module of its own,
    so every op of the statistics is in a module scope a quantizer can keep float."""

    def __init__(self, norm: StatsGroupNorm, phases: int = 1) -> None:
        super().__init__()
        self.pool = norm.pool
        self.affine = ConvGroupAffine(norm, phases)

    def affine_of(self, x: torch.Tensor, phases: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``StatsGroupNorm.affine_of``, for the phases this norm was built for."""
        if phases != self.affine.phases:
            raise ValueError(f"this norm was built for {self.affine.phases} phase(s), not {phases}")
        return self.affine(x)

    forward = StatsGroupNorm.forward  # the same pool and multiply-add


def stats_group_norms(stages: Iterable[nn.Module]) -> None:
    """Each given stage's GroupNorm as ``StatsGroupNorm``, a pooled stage's max pool inside it (signs folded)."""
    for stage in stages:
        if isinstance(stage.norm, nn.GroupNorm):
            stage.norm = StatsGroupNorm(stage.norm, pool=stage.pool)
            if stage.pool:
                stage.norm.fold_signs(_last_conv(stage.block))
                stage.pool = False


class PhaseConvStage(nn.Module):
    """A pooled stage whose block is a 3x3 convolution (``StatsGroupNorm`` with signs folded): the convolution as one
    stride-2 4x4 convolution whose 4C output channels are the 2x2 max pool's four phases, so nothing runs at full
    resolution; the pool is an elementwise maximum of the phases (LiteRT float graphs, first stage only: XNNPACK runs
    the 256 x 256 3x3 convolution slowly; 0.82x -> 0.76x a plain conversion's latency, ``scripts/bench_export.py``; on
    the 128 x 128 and 64 x 64 stages it measured slower). Statistics per phase and channel combine as in
    ``StatsGroupNorm`` (equal pixel counts, law of total variance). Costs 6 KB of mostly zero weights."""

    def __init__(self, stage: nn.Module) -> None:
        super().__init__()
        conv, self.norm = stage.block, stage.norm
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.dilation != (1, 1) \
                or conv.groups != 1 or not (isinstance(self.norm, StatsGroupNorm) and self.norm.pool):
            raise ValueError("PhaseConvStage needs a 3x3 convolution and a pooled StatsGroupNorm")
        c = self.channels = conv.out_channels
        weight = conv.weight.detach().new_zeros(4 * c, conv.in_channels, 4, 4)
        for phase, (row, col) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            weight[phase * c:(phase + 1) * c, :, row:row + 3, col:col + 3] = conv.weight.detach()
        self.conv = nn.Conv2d(conv.in_channels, 4 * c, 4, stride=2, padding=1, dtype=weight.dtype)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(conv.bias.detach().repeat(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        c = self.channels
        scale, shift = self.norm.affine_of(x, phases=4)
        top_left, top_right, bottom_left, bottom_right = x.split(c, 1)
        pooled = torch.maximum(torch.maximum(top_left, top_right), torch.maximum(bottom_left, bottom_right))
        return pooled * scale + shift


class XYMapSource(nn.Module):
    """What a GHPA's height-width map is computed from (8x8 parameter, resize, its conv): graphs that can fold
    constants at load time (ONNX Runtime) store this instead of the larger map (``export.onnx_compact``)."""

    def __init__(self, ghpa: GHPA, height: int, width: int) -> None:
        super().__init__()
        _derive(self, lambda: {"params": ghpa.params_xy})
        self.conv = ghpa.conv_xy
        self.size = (height, width)

    def forward(self) -> torch.Tensor:
        xy = upsample_to(rounding().constant(self.params), self.size)
        return self.conv(xy) if self.conv is not None else xy


class FoldedGHPA(nn.Module):
    """GHPA at a fixed spatial size: its attention maps are constants, each applied by one multiply; its convolutions
    are the GHPA's own modules (the deploy form works on a copy of the model).

    ``xy_source`` keeps what the height-width map is computed from where that is smaller than the map (larger than
    the 8x8 parameter grid); with ``map_in_graph`` set, ``forward`` computes the map from it instead of storing it."""

    def __init__(self, ghpa: GHPA, height: int, width: int) -> None:
        super().__init__()
        self.xy_source = XYMapSource(ghpa, height, width) if height * width > PARAM_GRID ** 2 else None
        self.map_in_graph = False
        self.multi_axis = ghpa.multi_axis
        self.group = ghpa.norm1.weight.numel() // 4
        _derive(self, lambda: {f"map{i}": m for i, m in enumerate(ghpa.attention_maps(height, width))})
        self.norm1 = RsqrtLayerNorm(ghpa.norm1)
        self.norm2 = RsqrtLayerNorm(ghpa.norm2)
        self.dw = ghpa.dw if self.multi_axis else None
        self.ldw = ghpa.ldw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        hook = rounding()
        xy = self.xy_source() if self.map_in_graph and self.xy_source is not None else hook.constant(self.map0)
        if not self.multi_axis:
            x = x * xy
        else:
            g1, g2, g3, g4 = torch.split(x, self.group, dim=1)
            with hook.concat_inputs():
                parts = [g1 * xy, g2 * hook.constant(self.map1), g3 * hook.constant(self.map2), self.dw(g4)]
            x = torch.cat(parts, dim=1)
        return self.ldw(self.norm2(x))


def _ghpa_sizes(model: EGEUNet, size: int) -> dict[GHPA, tuple[int, int]]:
    """Spatial size each GHPA sees for a size x size input (found by one forward pass)."""
    sizes: dict[GHPA, tuple[int, int]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        sizes[module] = tuple(args[0].shape[2:])

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, GHPA)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, model.config.in_channels, size, size, dtype=model.final.weight.dtype))
    finally:
        for h in hooks:
            h.remove()
    return sizes


class GroupInputsNorm(nn.Module):
    """GAB's four group inputs: matching chunks of the high and low features and the mask, concatenated and
    LayerNorm-ed. One module, so a full-int8 graph keeps the whole step float: each feature is dequantized once and
    split in float, instead of every chunk being requantized to its concatenation's scale (13 ops fewer per GAB)."""

    def __init__(self, norms: list[LayerNorm2d]) -> None:
        super().__init__()
        self.norms = nn.ModuleList(RsqrtLayerNorm(n) for n in norms)

    def forward(self, xh: torch.Tensor, xl: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        extra = [mask] if mask is not None else []
        return [norm(torch.cat([h, l, *extra], dim=1)) for norm, h, l in zip(self.norms, xh.chunk(4, 1), xl.chunk(4, 1))]


class FoldedGAB(nn.Module):
    """GAB with its group inputs in one float module (``GroupInputsNorm``); the same function."""

    def __init__(self, gab: GAB) -> None:
        super().__init__()
        branches = (gab.g0, gab.g1, gab.g2, gab.g3)
        self.use_mask = gab.use_mask
        self.pre_project = gab.pre_project
        self.inputs = GroupInputsNorm([b[0] for b in branches])
        self.convs = nn.ModuleList(b[1] for b in branches)
        self.tail_norm = RsqrtLayerNorm(gab.tail_conv[0])
        self.tail = gab.tail_conv[1]

    def forward(self, xh: torch.Tensor, xl: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        xh = upsample_to(self.pre_project(xh), (xl.shape[2], xl.shape[3]))
        groups = self.inputs(xh, xl, mask if self.use_mask else None)
        with rounding().concat_inputs():
            parts = [conv(g) for conv, g in zip(self.convs, groups)]
        return self.tail(self.tail_norm(torch.cat(parts, dim=1)))


def _fixed_conv(weight: torch.Tensor, bias: float | None = None) -> nn.Conv2d:
    """A 1x1 convolution with a fixed (out x in) matrix and a constant bias."""
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight.view(*weight.shape, 1, 1))
        if bias is not None:
            conv.bias.fill_(bias)
    return conv


def _affine(norm: RsqrtLayerNorm, factor: float) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """What is left of a (folded) RsqrtLayerNorm's affine for inputs ``factor`` times too small: scale, shift."""
    if norm.weight is None:
        return None, None if norm.bias is None else norm.bias / factor
    return norm.weight * factor, norm.bias


class LinearNormGAB(nn.Module):
    """``FoldedGAB`` with its LayerNorms written as 1x1 convolutions with fixed integer matrices (LiteRT float graphs).

    One concatenation of (xh, xl, mask) and one convolution gather every group's channels already centred (entries
    g-1 and -1: g times the centred values); rows of ones give each group's sum of squares, and a 0/1 matrix hands
    each channel its group's reciprocal root (rsqrt on 4 channels instead of 4g: 3% of the bridge's time); the tail
    norm centres by (G*I - 1). The powers of g fold into the depthwise and tail weights, so the integer matrices stay
    exact in float16 too. XNNPACK slices and concatenates channels slowly on NHWC (5 floats per pixel per group):
    this form replaces eight slices, five concatenations and the channel means (the 128 x 128 bridge was the
    slowest block of the LiteRT graph; ad hoc module timings, not in the repo)."""

    def __init__(self, gab: FoldedGAB) -> None:
        super().__init__()
        low = gab.pre_project.out_channels
        quarter, mask = low // 4, int(gab.use_mask)
        g = 2 * quarter + mask
        sources = [s for i in range(4) for s in (*range(i * quarter, (i + 1) * quarter),
                                                 *range(low + i * quarter, low + (i + 1) * quarter),
                                                 *([2 * low] if mask else []))]
        dtype = gab.pre_project.weight.dtype
        gather = torch.zeros(4 * g, 2 * low + mask, dtype=dtype)
        gather[torch.arange(4 * g), sources] = float(g)
        for i in range(4):
            gather[i * g:(i + 1) * g, sources[i * g:(i + 1) * g]] -= 1.0
        self.pre_project, self.use_mask, self.g = copy.deepcopy(gab.pre_project), gab.use_mask, g
        self.centre = _fixed_conv(gather)
        eps, tail_eps, size = gab.inputs.norms[0].eps, gab.tail_norm.eps, 4 * g
        self.group_sum = _fixed_conv(torch.block_diag(*[torch.ones(1, g, dtype=dtype)] * 4), g ** 3 * eps)
        self.to_channels = _fixed_conv(torch.block_diag(*[torch.ones(g, 1, dtype=dtype)] * 4))
        root = g ** 0.5  # centre / sqrt(group_sum) is the normalised value over sqrt(g)
        self.convs = copy.deepcopy(gab.convs)
        scales, shifts = [], []
        for norm, conv in zip(gab.inputs.norms, self.convs):
            scale, shift = _affine(norm, root)
            if scale is None:  # folded: the depthwise weights take the factor
                conv.weight.data.mul_(root)
            scales.append(torch.ones(1, g, 1, 1, dtype=dtype) if scale is None else scale)
            shifts.append(torch.zeros(1, g, 1, 1, dtype=dtype) if shift is None else shift)
        unfolded = any(n.weight is not None for n in gab.inputs.norms)
        self.register_buffer("scale", torch.cat(scales, 1) if unfolded else None)
        shifted = any(n.bias is not None for n in gab.inputs.norms)
        self.register_buffer("shift", torch.cat(shifts, 1) if shifted else None)
        self.tail_centre = _fixed_conv(size * torch.eye(size, dtype=dtype) - 1.0)
        self.tail_sum = _fixed_conv(torch.ones(1, size, dtype=dtype), size ** 3 * tail_eps)
        tail_scale, tail_shift = _affine(gab.tail_norm, size ** 0.5)
        self.register_buffer("tail_scale", tail_scale)
        self.register_buffer("tail_shift", tail_shift)
        self.tail = copy.deepcopy(gab.tail)
        if self.tail_scale is None:
            self.tail.weight.data.mul_(size ** 0.5)

    def forward(self, xh: torch.Tensor, xl: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        xh = upsample_to(self.pre_project(xh), (xl.shape[2], xl.shape[3]))
        centred = self.centre(torch.cat([xh, xl, mask] if self.use_mask else [xh, xl], dim=1))
        x = centred * self.to_channels(torch.rsqrt(self.group_sum(centred * centred)))
        x = x * self.scale if self.scale is not None else x
        x = x + self.shift if self.shift is not None else x
        x = torch.cat([conv(part) for conv, part in zip(self.convs, x.split(self.g, dim=1))], dim=1)
        centred = self.tail_centre(x)
        x = centred * torch.rsqrt(self.tail_sum(centred * centred))
        x = x * self.tail_scale if self.tail_scale is not None else x
        return self.tail(x + self.tail_shift if self.tail_shift is not None else x)


def _fold_norms(root: nn.Module) -> int:
    """Fold each RsqrtLayerNorm's affine into the convolution right after it (GHPA's norm2 -> its ldw, GAB's
    group and tail norms -> their convolutions); returns how many folded. GHPA's norm1 feeds the attention
    multiplies and stays as it is."""
    pairs = [(m.norm2, m.ldw[0]) for m in root.modules() if isinstance(m, FoldedGHPA)]
    for gab in (m for m in root.modules() if isinstance(m, FoldedGAB)):
        pairs += [*zip(gab.inputs.norms, gab.convs), (gab.tail_norm, gab.tail)]
    return sum(norm.fold_into(conv) for norm, conv in pairs)


def _swap_modules(root: nn.Module, make: dict[type, object]) -> None:
    """Replace, depth first, every child whose type is in ``make`` by ``make[type](child)``."""
    for name, child in root.named_children():
        factory = make.get(type(child))
        if factory is not None:
            setattr(root, name, factory(child))
        else:
            _swap_modules(child, make)


class DeployEGEUNet(nn.Module):
    """``EGEUNet`` at ``size`` x ``size``: float N x 3 x S x S in [0, 255] -> probabilities N x 1 x S x S.

    ``bake_preprocess``: the input is uint8 RGB at the model size and the graph applies the min-max
    stretch of ``egeunet.preprocess``. ``nhwc``: input N x S x S x 3 and output N x S x S x 1.
    ``live``: the form shares ``model``'s parameters and ``refresh`` recomputes the tensors derived from them (the
    int8 fine-tuning simulation trains through it); otherwise they are frozen copies and need no gradient.
    """

    def __init__(self, model: EGEUNet, size: int, bake_preprocess: bool = False, nhwc: bool = False,
                 live: bool = False) -> None:
        super().__init__()
        check_input_size(size, size)
        self.size, self.bake_preprocess, self.nhwc = int(size), bool(bake_preprocess), bool(nhwc)
        self.live = bool(live)
        model = _share_copy(model, self.live).eval()
        sizes = _ghpa_sizes(model, size)
        _swap_modules(model, {GHPA: lambda g: FoldedGHPA(g, *sizes[g]), GAB: FoldedGAB, LayerNorm2d: RsqrtLayerNorm})
        self.folded_norms = _fold_norms(model)
        self.net = model
        self.stretch = MinMaxStretch() if self.bake_preprocess else None
        if not self.live:
            _drop_recipes(self)
            for p in self.parameters():
                p.requires_grad_(False)

    def refresh(self) -> None:
        """Recompute every derived tensor from the model's current parameters (a live form; with gradients where
        enabled): folded convolution weights, norm affines, attention maps."""
        if not self.live:
            raise ValueError("refresh() needs a live deploy form (DeployEGEUNet(..., live=True))")
        for module in self.modules():
            recipe = module.__dict__.get("_recipe")
            if recipe is not None:
                _assign(module, recipe(), frozen=False)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Example (batch 1) input shape in this form's layout."""
        s = self.size
        return (1, s, s, 3) if self.nhwc else (1, 3, s, s)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A deterministic example input of the right dtype (for tracing)."""
        gen = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (batch,) + self.input_shape[1:], generator=gen, dtype=torch.uint8)
        return x if self.bake_preprocess else x.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        if self.stretch is not None:
            x = self.stretch(x)
        final, _ = self.net.features(x)
        prob = torch.sigmoid(upsample_to(final, (self.size, self.size)))
        return prob.reshape(-1, self.size, self.size, 1) if self.nhwc else prob


def stretch_uint8(x: torch.Tensor) -> torch.Tensor:
    """``minmax_stretch`` for integer pixels: a span below 1 means a constant image, which maps to 0."""
    x = x.float()
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    span = torch.clamp(x.amax(dim=(1, 2, 3), keepdim=True) - lo, min=1.0)
    return (x - lo) / span * 255.0


class MinMaxStretch(nn.Module):
    """Baked preprocessing as a module, so converters name its ops (a quantizer keeps this scope float)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stretch_uint8(x)


FLOAT_MODULES: tuple[type[nn.Module], ...] = (nn.GroupNorm, RsqrtGroupNorm, RsqrtLayerNorm, GroupInputsNorm,
                                               MinMaxStretch)
"""The deploy form's float regions: every op inside these modules (the normalisations and baked preprocessing)
stays float in a full-int8 artifact. Quantization recipes read this; a rewrite that renames or fuses one of these
modules must update it (tests compare it with what a built artifact actually keeps float)."""


LINEAR_NORM_MIN_PIXELS = 64 * 64
"""``LinearNormGAB`` only on bridges with at least this many pixels: its fixed matrices (about (4g)^2 + 4g(2L + 1)
floats, 80 KB on the 8 x 8 bridge) cost more bytes than they save time where there are few pixels."""


def for_litert(deploy: DeployEGEUNet, float_graph: bool = False) -> DeployEGEUNet:
    """A copy of ``deploy`` for LiteRT, the same function: GHPA height-width maps larger than their 8x8 parameter
    computed in the graph (a LiteRT file stores each constant once and cannot fold at load; 4 small ops instead of
    C/4 x H x W stored values) and GroupNorm written out (``RsqrtGroupNorm``). ``float_graph`` (fp32 and fp16 files,
    never quantized): GroupNorm from channel statistics with the max pools first (``StatsGroupNorm``), the first stage
    on its pool phases (``PhaseConvStage``) and the large bridges' norms as fixed 1x1 convolutions (``LinearNormGAB``),
    0.96x -> 0.74x a plain conversion's latency (``scripts/bench_export.py``); int8 recipes keep the form their float
    regions and the fine-tuning simulation runs. ONNX Runtime runs the 1x1 form slower (``for_onnx``); OpenCV DNN
    cannot run a convolution of a constant."""
    if deploy.live and float_graph:
        raise ValueError("a live deploy form has only the int8 graphs' LiteRT copy (float_graph=False)")
    copied = _share_copy(deploy, deploy.live)
    if float_graph:
        stats_group_norms((*copied.net.encoder, *copied.net.decoder))
        copied.net.encoder[0] = PhaseConvStage(copied.net.encoder[0])
        for i, bridge in enumerate(copied.net.bridges or ()):  # bridge i works at size / 2^(5 - i)
            if isinstance(bridge, FoldedGAB) and (copied.size >> (5 - i)) ** 2 >= LINEAR_NORM_MIN_PIXELS:
                copied.net.bridges[i] = LinearNormGAB(bridge)
    else:
        _swap_modules(copied.net, {nn.GroupNorm: RsqrtGroupNorm})
    for module in copied.modules():
        if isinstance(module, FoldedGHPA):
            module.map_in_graph = True
    if not copied.live:
        _drop_recipes(copied)
    return copied


def for_executorch(deploy: DeployEGEUNet) -> DeployEGEUNet:
    """A copy of ``deploy`` that ExecuTorch's XNNPACK delegate takes whole, the same function, for its fp32 and int8
    programs: ``for_litert``'s float graph with GroupNorm statistics from 1x1 convolutions (``ConvStatsGroupNorm``)
    and every LayerNorm's channel means as 1x1 convolutions (``RsqrtLayerNorm.as_convolutions``): XNNPACK takes a MEAN
    over both spatial axes of a 4-D tensor and no other reduction, and runs NHWC, so each reshape costs two transposes
    (``export.executorch_export`` writes splits as slices)."""
    copied = for_litert(deploy, float_graph=True)
    dtype = copied.net.final.weight.dtype
    phased = {id(m.norm) for m in copied.modules() if isinstance(m, PhaseConvStage)}
    _swap_modules(copied.net, {StatsGroupNorm: lambda n: ConvStatsGroupNorm(n, 4 if id(n) in phased else 1)})
    for module in copied.modules():
        if isinstance(module, RsqrtLayerNorm):
            module.as_convolutions(dtype)
        for name, buffer in list(module.named_buffers(recurse=False)):  # ExecuTorch passes a buffer to the delegate
            delattr(module, name)  # as a runtime input, stored outside it (an unused one too); a parameter is its own
            setattr(module, name, nn.Parameter(buffer, requires_grad=False))
    return copied


ONNX_STATS_STAGES = 2
"""``for_onnx`` writes the GroupNorm of this many leading encoder stages from channel statistics, pooled first."""


def for_onnx(deploy: DeployEGEUNet, float_graph: bool = True) -> DeployEGEUNet:
    """A copy of ``deploy`` for ONNX files, the same function, with no reduction over more than ``INT8_MEAN_MAX``
    values: GroupNorm written out with staged means (``RsqrtGroupNorm``, as LiteRT's int8 copy). ONNX Runtime runs
    PyTorch's GroupNorm as one InstanceNormalization over up to 131,072 values, which onnxruntime-web sums
    sequentially in float32 (group means off by up to 3.5e-2: 5-8% of an int8 file's mask pixels flip in the browser).
    ``float_graph`` (fp32 and fp16 files): the first ``ONNX_STATS_STAGES`` encoder stages' GroupNorm from channel
    statistics with the max pool before the multiply-add (``StatsGroupNorm``), on a quarter of the pixels (ONNX
    Runtime, one thread: 0.81x -> 0.79x a plain export's latency, ``scripts/bench_export.py``; the same on more stages
    was no faster); int8 files keep ``RsqrtGroupNorm`` everywhere (a float region of their recipe)."""
    if deploy.live:
        raise ValueError("for_onnx takes a frozen deploy form (live forms exist for the int8 LiteRT simulation)")
    copied = copy.deepcopy(deploy)
    if float_graph:
        stats_group_norms(copied.net.encoder[:ONNX_STATS_STAGES])
    _swap_modules(copied.net, {nn.GroupNorm: RsqrtGroupNorm})
    _drop_recipes(copied)
    return copied


def deploy_form(model: EGEUNet, size: int = 256, bake_preprocess: bool = False, nhwc: bool = False,
                live: bool = False) -> DeployEGEUNet:
    """Build the deploy form of ``model`` for ``size`` x ``size`` inputs (eval mode; no gradients unless ``live``)."""
    return DeployEGEUNet(model, size, bake_preprocess, nhwc, live).eval()
