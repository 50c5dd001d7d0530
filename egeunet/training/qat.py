"""Fake quantization of EGE-UNet that mirrors the integer-only int8 TFLite export, for quantization-aware fine-tuning.

The integer-only export converts the deploy form's LiteRT copy (``egeunet.model.deploy.for_litert``: LayerNorm and GroupNorm
as ``(x - mean) * rsqrt(var + eps)``, a LayerNorm's scale, and before a 1x1 convolution its shift, folded into that
convolution, GHPA attention maps folded into constants except the height-width maps larger than 8x8, which are
computed from their parameters) and quantizes every tensor with ai-edge-quantizer's static int8 recipe: per-channel
symmetric int8 convolution weights (per-tensor on depthwise ones; range -127..127), per-tensor asymmetric int8 activations (-128..127) whose ranges
are min-max calibrated (the min and max over all calibration images), constant operands of MUL/ADD as
per-tensor asymmetric int8 on their range widened to hold 0, the ops feeding a concatenation directly on its grid,
ops that keep their input's scale (max-pool, reshapes, slices) requantizing nothing, a bilinear resize rounding its
result to its input's grid, and the sigmoid's output on the fixed grid 1/256 - 128. ``FakeQuantEGEUNet`` runs that
very deploy form, live (``deploy_form(..., live=True)``: it shares the model's parameters and recomputes the folds and
maps from them, with gradients), under a ``TorchFunctionMode`` that applies the same rounding to the same tensors, with
straight-through gradients, so the weights learn to survive it; the deploy modules call the mode where they hold a
constant or feed a concatenation (``egeunet.model.deploy.Rounding``). Ranges are calibrated, not learned, because the export
calibrates them again. ``egeunet.export.qat_fidelity`` checks it against the real TFLite: the TFLite's kernels,
given the same int8 inputs, match this rounding on all but a few in 10^5 elements, and every activation grid matches.

Its trainable network is an ordinary ``EGEUNet`` copy (``net``); ``plain()`` gives it back to save.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from egeunet.errors import EGEUNetError
from egeunet.model.deploy import DeployEGEUNet, Rounding, deploy_form, for_litert, rounded_by
from egeunet.model import EGEUNet, check_input_size
from egeunet.model.layers import upsample_to

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


class ActivationQuantizer(nn.Module):
    """Per-tensor asymmetric int8 fake quantization whose range is the min and max of everything it observed (the
    integer-only export's calibration, ``egeunet.export.tflite_export``): scale (max(hi, 0) - min(lo, 0)) / 255, at
    least float32's eps, zero point -128 - round(min(lo, 0) / scale), straight-through gradients."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("min_val", torch.tensor(float("inf")))
        self.register_buffer("max_val", torch.tensor(float("-inf")))
        self.register_buffer("scale", torch.tensor([1.0]))
        self.register_buffer("zero_point", torch.tensor([0], dtype=torch.int32))
        self.observing, self.rounding = False, True

    def reset(self) -> None:
        """Forget the observed range."""
        self.min_val.fill_(float("inf"))
        self.max_val.fill_(float("-inf"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            lo, hi = torch.aminmax(x.detach().float())
            self.min_val.copy_(torch.minimum(lo, self.min_val))
            self.max_val.copy_(torch.maximum(hi, self.max_val))
            lo, hi = torch.clamp(self.min_val, max=0.0), torch.clamp(self.max_val, min=0.0)
            scale = torch.clamp((hi - lo) / float(ACT_QMAX - ACT_QMIN), min=torch.finfo(torch.float32).eps)
            self.scale.copy_(scale)
            self.zero_point.copy_(torch.clamp(ACT_QMIN - torch.round(lo / scale).int(), ACT_QMIN, ACT_QMAX))
        if not self.rounding:
            return x
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, ACT_QMIN, ACT_QMAX)


class _Int8Mode(TorchFunctionMode, Rounding):
    """Rounds convolution weights and every requantizing op's output; the k-th such op uses quantizer k. As the deploy
    modules' ``Rounding``, it rounds their constants, and inside ``concat_inputs`` leaves an output pending: rounded
    when another op reads it, passed as it is to a concatenation (which rounds it, on its own grid).

    A bilinear resize keeps its input's scale but rounds its interpolated values to that grid again, so the grid of
    every rounded tensor is remembered (for one forward pass) to round the resizes of it."""

    def __init__(self, owner: "FakeQuantEGEUNet") -> None:
        super().__init__()
        self.owner = owner
        self.index = 0
        self.deferring = False
        self.grids: dict[int, tuple[torch.Tensor, float, int]] = {}
        self.pending: dict[int, list[torch.Tensor | None]] = {}  # id -> [unrounded, rounded once read]

    def constant(self, value: torch.Tensor) -> torch.Tensor:
        """``fake_quant_constant`` while the model rounds (not while it calibrates on the float graph); its grid is
        remembered, so a resize of it rounds to that grid again."""
        if not self.owner.rounding:
            return value
        out = fake_quant_constant(value)
        self.grids[id(out)] = (out, *constant_grid(value))
        return out

    @contextlib.contextmanager
    def concat_inputs(self) -> Iterator[None]:
        """Requantizing ops inside leave their outputs pending (see the class)."""
        was, self.deferring = self.deferring, True
        try:
            yield
        finally:
            self.deferring = was

    def _requantize(self, out: torch.Tensor) -> torch.Tensor:
        """``out`` on the next activation grid (created while calibrating)."""
        quantizers = self.owner.quantizers
        quantizer = quantizers[self.index + 1] if self.index + 1 < len(quantizers) else None
        out = self.owner.activation(self.index, out)
        self.index += 1
        if self.owner.rounding and quantizer is not None:
            self.grids[id(out)] = (out, float(quantizer.scale), int(quantizer.zero_point))
        return out

    def _read(self, arg):
        """A pending tensor as an op that reads it sees it: rounded, once."""
        entry = self.pending.get(id(arg)) if isinstance(arg, torch.Tensor) else None
        if entry is None:
            return arg
        if entry[1] is None:
            entry[1] = self._requantize(entry[0])
        return entry[1]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.pending and name not in ("cat", "__get__"):
            args = tuple(self._read(a) for a in args)
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
        if name in REQUANTIZING and isinstance(out, torch.Tensor) and out.is_floating_point():
            if self.deferring:
                self.pending[id(out)] = [out, None]
                return out
            return self._requantize(out)
        return out


class FakeQuantEGEUNet(nn.Module):
    """An EGE-UNet copy computing as the integer-only int8 export does; ``plain()`` returns its weights as EGEUNet.

    ``forward`` and ``forward_logits`` have EGEUNet's signatures (square inputs: the deploy form is size x size).
    ``calibrate`` creates the activation quantizers (one per requantizing op, in execution order) and sets their
    ranges, which stay fixed until the next call: like the export, ranges always come from the float graph, and
    training adapts the weights to them.
    """

    def __init__(self, model: EGEUNet) -> None:
        super().__init__()
        self.net = copy.deepcopy(model)
        self.quantizers = nn.ModuleList([ActivationQuantizer()])  # [0]: the input's QUANTIZE
        self.rounding = True
        self._forms: dict[int, DeployEGEUNet] = {}  # live LiteRT deploy forms of ``net``, by input size

    def activation(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Fake-quantize ``x`` with quantizer ``index`` (input is 0, ops count from 1), creating it when new."""
        index += 1
        if index == len(self.quantizers):
            if self.rounding:
                raise RuntimeError("fake quantization met an op it has no range for; call calibrate() first")
            quantizer = ActivationQuantizer().to(x.device)
            quantizer.observing, quantizer.rounding = True, False  # created while calibrating: observe the float value
            self.quantizers.append(quantizer)
        return self.quantizers[index](x)

    def _form(self, height: int, width: int) -> DeployEGEUNet:
        """The live integer-only deploy form for this input size, its derived tensors recomputed from ``net``."""
        if height != width:
            raise EGEUNetError(f"the int8 simulation runs square inputs, as the export does; got {height}x{width}")
        form = self._forms.get(height)
        if form is None:
            form = self._forms[height] = for_litert(deploy_form(self.net, height, live=True))
        form.refresh()
        return form

    def _run(self, x: torch.Tensor, logits: bool):
        check_input_size(x.shape[-2], x.shape[-1])
        size = (x.shape[2], x.shape[3])
        form = self._form(*size)
        x = self.quantizers[0](x)
        with _Int8Mode(self) as mode, rounded_by(mode):
            final, heads = form.net.features(x)
            if not logits:
                prob = torch.sigmoid(upsample_to(final, size))
        if logits:  # training targets are at input size; the export resizes only the final map
            return upsample_to(final, size), [upsample_to(h, size) for h in heads]
        if mode.index + 1 != len(self.quantizers):
            raise RuntimeError(f"fake quantization saw {mode.index} ops, expected {len(self.quantizers) - 1}")
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
            q.reset()
            q.observing, q.rounding = True, False
        try:
            for image in images:
                self(image[None])
        finally:
            self.rounding = True
            for q in self.quantizers:
                q.observing, q.rounding = False, True

    def quantizer_state(self) -> dict[str, torch.Tensor]:
        """The activation quantizers' state (scales, zero points, ranges) for a resume checkpoint."""
        return {k: v.detach().cpu().clone() for k, v in self.quantizers.state_dict().items()}

    def load_quantizer_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore ``quantizer_state``: quantizers are created to match, then loaded."""
        count = 1 + max(int(k.split(".")[0]) for k in state)
        while len(self.quantizers) < count:
            self.quantizers.append(ActivationQuantizer())
        self.quantizers.load_state_dict(state)

    def plain(self) -> EGEUNet:
        """The current weights as an ordinary EGEUNet in eval mode (no fake-quant module or class left)."""
        net = EGEUNet(self.net.config)
        net.load_state_dict({k: v.detach().cpu() for k, v in self.net.state_dict().items()})
        return net.eval()
