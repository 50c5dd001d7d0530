"""Fake quantization of EGE-UNet that mirrors the integer-only int8 TFLite export, for quantization-aware fine-tuning.

The integer-only export converts the deploy form's LiteRT copy (``export.deploy.for_litert``: LayerNorm and GroupNorm
as ``(x - mean) * rsqrt(var + eps)``, a LayerNorm's scale, and before a 1x1 convolution its shift, folded into that
convolution, GHPA attention maps folded into constants except the height-width maps larger than 8x8, which are
computed from their parameters) and quantizes every tensor with ai-edge-quantizer's static int8 recipe: per-channel
symmetric int8 convolution weights (per-tensor on depthwise ones; range -127..127), per-tensor asymmetric int8 activations (-128..127) whose ranges
are min-max calibrated (the min and max over all calibration images), constant operands of MUL/ADD as
per-tensor asymmetric int8 on their range widened to hold 0, the ops feeding a concatenation directly on its grid,
ops that keep their input's scale (max-pool, reshapes, slices) requantizing nothing, a bilinear resize rounding its
result to its input's grid, and the sigmoid's output on the fixed grid 1/256 - 128. ``FakeQuantEGEUNet`` runs the
model's own forward code under a ``TorchFunctionMode`` that applies the same rounding to the same tensors, with
straight-through gradients, so the weights learn to survive it. Ranges are calibrated, not learned, because the export
calibrates them again. ``egeunet.export.qat_fidelity`` checks it against the real TFLite: the TFLite's kernels,
given the same int8 inputs, match this rounding on all but a few in 10^5 elements, and every activation grid matches.

The wrapped network is a copy whose normalisation, GHPA and GAB modules are recast to subclasses that compute in the
integer-only graph's order; their parameters keep their names, so ``plain()`` gives an ordinary ``EGEUNet`` to save.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn
from torch.ao.quantization import FakeQuantize, MinMaxObserver
from torch.overrides import TorchFunctionMode

from egeunet.model import GHPA, EGEUNet, LayerNorm2d, check_input_size
from egeunet.model.gab import GAB
from egeunet.model.ghpa import PARAM_GRID
from egeunet.model.layers import MIN_FOLD_SCALE, staged_group_mean, upsample_to

WEIGHT_QMAX = 127  # symmetric narrow range, what TFLite kernels require of int8 weights and constants
ACT_QMIN, ACT_QMAX = -128, 127
SIGMOID_SCALE, SIGMOID_ZERO = 1.0 / 256, -128  # TFLite's fixed int8 LOGISTIC output grid
RSQRT_FLOOR = 1e-12  # rsqrt of this is far above any calibrated range, so it saturates as an input of 0 does

# Ops whose int8 output gets a scale of its own (TFLite: CONV_2D, DEPTHWISE_CONV_2D, GELU, MEAN, SUB, MUL, ADD,
# RSQRT, CONCATENATION). Max-pool, resize, reshapes, slices and transposes keep their input's scale: no rounding.
REQUANTIZING = frozenset({"conv2d", "gelu", "mean", "sub", "__sub__", "__rsub__", "rsub", "mul", "__mul__", "__rmul__",
                          "add", "__add__", "__radd__", "rsqrt", "cat"})


def fake_quant_weight(weight: torch.Tensor, per_tensor: bool = False) -> torch.Tensor:
    """Per-output-channel (``per_tensor``: one scale, as the export gives depthwise kernels) symmetric int8 rounding of
    a convolution weight (straight-through gradient)."""
    amax = weight.detach().abs().amax(dim=tuple(range(1, weight.dim())))
    if per_tensor:
        amax = amax.max().expand_as(amax)
    scale = torch.clamp(amax / WEIGHT_QMAX, min=1e-9).float()
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -WEIGHT_QMAX, WEIGHT_QMAX)


def constant_grid(value: torch.Tensor) -> tuple[float, int]:
    """(scale, zero point) of a constant operand: ai-edge-quantizer quantizes the constant inputs of MUL, ADD and
    resizes like activations, per tensor and asymmetric, on their min-max range widened to hold 0."""
    lo, hi = min(float(value.detach().min()), 0.0), max(float(value.detach().max()), 0.0)
    scale = max((hi - lo) / (ACT_QMAX - ACT_QMIN), 1e-9)
    return scale, int(round(ACT_QMIN - lo / scale))


def fake_quant_constant(value: torch.Tensor) -> torch.Tensor:
    """Int8 rounding of a constant operand (norm affine, folded GHPA map) on its ``constant_grid``."""
    return torch.fake_quantize_per_tensor_affine(value, *constant_grid(value), ACT_QMIN, ACT_QMAX)


def _constant(value: torch.Tensor, grid: bool = False) -> torch.Tensor:
    """``fake_quant_constant`` while the active model rounds (not while it calibrates on the float graph); ``grid``:
    remember its grid, so a resize of it rounds to that grid again."""
    mode = _mode()
    if mode is None or not mode.owner.rounding:
        return value
    out = fake_quant_constant(value)
    if grid:
        mode.grids[id(out)] = (out, *constant_grid(value))
    return out


def activation_quantizer() -> FakeQuantize:
    """Per-tensor asymmetric int8 fake quantization with min-max ranges over all calibration images (the integer-only
    export's calibration, ``egeunet.export.tflite_export``)."""
    return FakeQuantize(observer=MinMaxObserver, quant_min=ACT_QMIN, quant_max=ACT_QMAX, dtype=torch.qint8,
                        qscheme=torch.per_tensor_affine)


class _Int8Mode(TorchFunctionMode):
    """Rounds convolution weights and every requantizing op's output; the k-th such op uses quantizer k.

    A bilinear resize keeps its input's scale but rounds its interpolated values to that grid again, so the grid of
    every rounded tensor is remembered (for one forward pass) to round the resizes of it."""

    def __init__(self, owner: "FakeQuantEGEUNet") -> None:
        super().__init__()
        self.owner = owner
        self.index = 0
        self.paused = False
        self.raw = False
        self.grids: dict[int, tuple[torch.Tensor, float, int]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        rounding = self.owner.rounding
        if name == "conv2d" and rounding:
            groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
            args = (args[0], fake_quant_weight(args[1], per_tensor=groups > 1), *args[2:])
        elif name == "rsqrt":  # int8 RSQRT saturates where its input rounded to 0; keep gradients finite there
            args = (torch.clamp(args[0], min=RSQRT_FLOOR), *args[1:])
        out = func(*args, **kwargs)
        if name == "sigmoid" and rounding:
            return torch.fake_quantize_per_tensor_affine(out, SIGMOID_SCALE, SIGMOID_ZERO, ACT_QMIN, ACT_QMAX)
        if name == "interpolate" and rounding and id(args[0]) in self.grids:
            _, scale, zero = self.grids[id(args[0])]
            return torch.fake_quantize_per_tensor_affine(out, scale, zero, ACT_QMIN, ACT_QMAX)
        if name in REQUANTIZING and not self.raw and isinstance(out, torch.Tensor) and out.is_floating_point():
            quantizer = self.owner.quantizers[self.index + 1] if self.index + 1 < len(self.owner.quantizers) else None
            out = self.owner.activation(self.index, out)
            self.index += 1
            if rounding and quantizer is not None:
                self.grids[id(out)] = (out, float(quantizer.scale), int(quantizer.zero_point))
        return out


def _mode() -> _Int8Mode | None:
    """The active fake-quantization mode, if any (found on torch's mode stack)."""
    from torch.overrides import _get_current_function_mode_stack

    return next((m for m in reversed(_get_current_function_mode_stack()) if isinstance(m, _Int8Mode)), None)


@contextlib.contextmanager
def _mode_flag(flag: str) -> Iterator[None]:
    """Set ``flag`` (``raw`` or ``paused``) on the active fake-quantization mode, if any, while the block runs."""
    mode = _mode()
    if mode is None:
        yield
        return
    was = getattr(mode, flag)
    setattr(mode, flag, True)
    try:
        yield
    finally:
        setattr(mode, flag, was)


def _on_next_grid() -> contextlib.AbstractContextManager:
    """Leave the outputs computed inside unrounded: they are rounded once, by the op that takes them next (a
    concatenation whose inputs ai-edge-quantizer puts on its own output grid)."""
    return _mode_flag("raw")


def _float() -> contextlib.AbstractContextManager:
    """Compute without fake quantization (what the export folds into constants before quantizing)."""
    return _mode_flag("paused")


class RsqrtLayerNorm2d(LayerNorm2d):
    """LayerNorm2d in the deploy form's op order: mean, sub, square, mean, add eps, rsqrt, mul; then the affine, or
    what is left of it where the deploy form folds it into the next convolution (``fold``, set by
    ``FakeQuantEGEUNet``): "scale" adds bias / weight (the scale goes into the convolution), "affine" adds nothing."""

    fold: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(1, keepdim=True)
        var = (centred * centred).mean(1, keepdim=True)
        y = centred * torch.rsqrt(var + self.eps)
        if self.fold == "affine":
            return y
        if self.fold == "scale":
            with _float():
                shift = (self.bias / self.weight).view(1, -1, 1, 1)
            return y + _constant(shift)
        weight, bias = (_constant(p).view(1, -1, 1, 1) for p in (self.weight, self.bias))
        return y * weight + bias


class NormFoldedConv2d(nn.Conv2d):
    """A convolution that reads a LayerNorm whose scale (``norm.fold == "scale"``) or scale and shift ("affine", a
    1x1 convolution) the deploy form folds into it: its weights are the product, rounded as one int8 kernel."""

    norm: RsqrtLayerNorm2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.__dict__["norm"]  # not a submodule: the norm keeps its own place in the state dict
        with _float():
            depthwise = self.groups > 1
            scale = norm.weight.view(-1, 1, 1, 1) if depthwise else norm.weight.view(1, -1, 1, 1)
            weight = self.weight * scale
            bias = self.bias
            if norm.fold == "affine":
                bias = bias + self.weight.flatten(1) @ norm.bias
        return self._conv_forward(x, weight, bias)


class DecomposedGroupNorm(nn.GroupNorm):
    """GroupNorm as the deploy form writes it out for LiteRT (``RsqrtGroupNorm``): per group staged mean, sub, square,
    staged mean, add eps, rsqrt, mul; then the per-channel weight and bias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        groups = x.reshape(n, self.num_groups, c // self.num_groups * h, w)
        centred = groups - staged_group_mean(groups, h)
        y = centred * torch.rsqrt(staged_group_mean(centred * centred, h) + self.eps)
        weight, bias = (_constant(p).view(1, -1, 1, 1) for p in (self.weight, self.bias))
        return y.reshape(n, c, h, w) * weight + bias


class FoldedMapsGHPA(GHPA):
    """GHPA whose weight-only attention maps are computed in float and rounded once, as the export folds them; the
    four branches feed the concatenation on its grid (no rounding of their own), as in the integer-only export."""

    def _cached_maps(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
        with _float():
            maps = self.attention_maps(height, width)
        maps = [_constant(m) for m in maps]
        if height * width > PARAM_GRID ** 2:  # LiteRT's copy computes this map in the graph, on int8 grids
            xy = upsample_to(_constant(self.params_xy, grid=True), (height, width))
            maps[0] = self.conv_xy(xy) if self.conv_xy is not None else xy
        return maps

    def _branches(self, groups: tuple[torch.Tensor, ...], maps: list[torch.Tensor]) -> list[torch.Tensor]:
        g1, g2, g3, g4 = groups
        g4 = self.dw[:-1](g4)
        with _on_next_grid():
            return [g1 * maps[0], g2 * maps[1], g3 * maps[2], self.dw[-1](g4)]


class ConcatGridGAB(GAB):
    """GAB whose four dilated branches end on the tail concatenation's grid (no rounding of their own), as in the
    integer-only export."""

    def forward(self, xh: torch.Tensor, xl: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        xh = upsample_to(self.pre_project(xh), (xl.shape[2], xl.shape[3]))
        extra = [mask] if self.use_mask else []
        groups = []
        for branch, h, low in zip((self.g0, self.g1, self.g2, self.g3), xh.chunk(4, 1), xl.chunk(4, 1)):
            normed = branch[0](torch.cat([h, low, *extra], dim=1))
            with _on_next_grid():
                groups.append(branch[1](normed))
        return self.tail_conv(torch.cat(groups, dim=1))


def _folds(net: nn.Module) -> list[tuple[RsqrtLayerNorm2d, nn.Conv2d, str]]:
    """(norm, the convolution reading it, "scale" or "affine") for each LayerNorm the deploy form folds: GHPA's norm2
    and GAB's group norms into their 3x3 kernels (scale; the shift stays, divided by it), GAB's tail norm into its
    1x1 convolution (scale and shift); none where a |scale| is under ``MIN_FOLD_SCALE``, as in the deploy form."""
    pairs = [(m.norm2, m.ldw[0], "scale") for m in net.modules() if isinstance(m, GHPA)]
    for gab in (m for m in net.modules() if isinstance(m, GAB)):
        pairs += [(b[0], b[1], "scale") for b in (gab.g0, gab.g1, gab.g2, gab.g3)]
        pairs.append((gab.tail_conv[0], gab.tail_conv[1], "affine"))
    return [(n, c, f) for n, c, f in pairs if float(n.weight.detach().abs().min()) >= MIN_FOLD_SCALE]


RECAST: dict[type, type] = {LayerNorm2d: RsqrtLayerNorm2d, nn.GroupNorm: DecomposedGroupNorm, GHPA: FoldedMapsGHPA,
                            GAB: ConcatGridGAB}


class FakeQuantEGEUNet(nn.Module):
    """An EGE-UNet copy computing as the integer-only int8 export does; ``plain()`` returns its weights as EGEUNet.

    ``forward`` and ``forward_logits`` have EGEUNet's signatures. ``calibrate`` creates the activation quantizers
    (one per requantizing op, in execution order) and sets their ranges, which stay fixed until the next call:
    like the export, ranges always come from the float graph, and training adapts the weights to them.
    """

    def __init__(self, model: EGEUNet) -> None:
        super().__init__()
        self.net = copy.deepcopy(model)
        for module in self.net.modules():
            if type(module) in RECAST:
                module.__class__ = RECAST[type(module)]
        for norm, conv, fold in _folds(self.net):
            norm.fold, conv.__class__ = fold, NormFoldedConv2d
            object.__setattr__(conv, "norm", norm)  # a reference, not a submodule
        self.quantizers = nn.ModuleList([activation_quantizer()])  # [0]: the input's QUANTIZE
        self.rounding = True

    def activation(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Fake-quantize ``x`` with quantizer ``index`` (input is 0, ops count from 1), creating it when new."""
        index += 1
        if index == len(self.quantizers):
            if self.rounding:
                raise RuntimeError("fake quantization met an op it has no range for; call calibrate() first")
            self.quantizers.append(activation_quantizer().to(x.device))
            self.quantizers[index].disable_fake_quant()  # created while calibrating: observe the float value
        return self.quantizers[index](x)

    def _run(self, x: torch.Tensor, logits: bool):
        check_input_size(x.shape[-2], x.shape[-1])
        x = self.quantizers[0](x)
        with _Int8Mode(self) as mode:
            final, heads = self.net._features(x)
            size = (x.shape[2], x.shape[3])
            if logits:
                with _float():  # training targets are at input size; the export resizes only the final map
                    return upsample_to(final, size), [upsample_to(h, size) for h in heads]
            count = mode.index
            prob = torch.sigmoid(upsample_to(final, size))
        if count + 1 != len(self.quantizers):
            raise RuntimeError(f"fake quantization saw {count} ops, expected {len(self.quantizers) - 1}")
        return prob

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Final logit and deep-supervision logits at input size, computed on the int8 grid."""
        return self._run(x, logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities N x 1 x H x W as the integer-only artifact would give them (to rounding)."""
        return self._run(x, logits=False)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> None:
        """Ranges from scratch as the export calibrates them: on the float graph (no rounding anywhere), each tensor's
        min and max over ``images`` run one at a time; then rounding with those ranges, frozen."""
        self.rounding = False
        for q in self.quantizers:
            q.activation_post_process.reset_min_max_vals()
            q.enable_observer()
            q.disable_fake_quant()
        try:
            for image in images:
                self(image[None])
        finally:
            self.rounding = True
            for q in self.quantizers:
                q.disable_observer()
                q.enable_fake_quant()

    def quantizer_state(self) -> dict[str, torch.Tensor]:
        """The activation quantizers' state (scales, zero points, ranges) for a resume checkpoint."""
        return {k: v.detach().cpu().clone() for k, v in self.quantizers.state_dict().items()}

    def load_quantizer_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore ``quantizer_state``: quantizers are created to match, then loaded."""
        count = 1 + max(int(k.split(".")[0]) for k in state)
        while len(self.quantizers) < count:
            self.quantizers.append(activation_quantizer())
        self.quantizers.load_state_dict(state)

    def plain(self) -> EGEUNet:
        """The current weights as an ordinary EGEUNet in eval mode (no fake-quant module or class left)."""
        net = EGEUNet(self.net.config)
        net.load_state_dict({k: v.detach().cpu() for k, v in self.net.state_dict().items()})
        return net.eval()
