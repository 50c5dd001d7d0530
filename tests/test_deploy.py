"""Deploy-form rewrites: each keeps the float function (float64 checks) and removes what it claims to remove."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from egeunet import EGEUNet, EGEUNetConfig
from egeunet.export.deploy import (FLOAT_MODULES, FOLD_MIN_SCALE, DeployGAB, RsqrtLayerNorm,
                                   deploy_form, fold_into_conv)
from egeunet.model import GAB, LayerNorm2d

from conftest import perturb_

SMALL = EGEUNetConfig(channels=(4, 8, 12, 16, 24, 32))


def _layer_norm(channels: int, seed: int, scale_floor: float = 0.5) -> LayerNorm2d:
    gen = torch.Generator().manual_seed(seed)
    norm = LayerNorm2d(channels).double()
    with torch.no_grad():
        signs = torch.where(torch.rand(channels, generator=gen) < 0.5, -1.0, 1.0).double()
        norm.weight.copy_(signs * (scale_floor + torch.rand(channels, generator=gen).double()))
        norm.bias.copy_(torch.randn(channels, generator=gen).double())
    return norm


@pytest.mark.parametrize("conv", [nn.Conv2d(6, 5, 1), nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=6)],
                         ids=["1x1", "depthwise-3x3"])
def test_norm_affine_folds_into_the_next_conv(conv):
    """LayerNorm then conv == folded norm then folded conv (float64), zero padding included."""
    norm, conv = _layer_norm(6, 0), conv.double()
    x = torch.randn(2, 6, 9, 7, dtype=torch.float64) * 3 + 1
    with torch.no_grad():
        expected = conv(norm(x))
        deploy = RsqrtLayerNorm(norm)
        fold_into_conv(deploy, conv)
        assert deploy.weight is None
        assert (deploy.bias is None) == (conv.kernel_size == (1, 1))
        assert torch.allclose(conv(deploy(x)), expected, atol=1e-12, rtol=0)


def test_small_scales_are_not_divided_into_the_shift():
    """A padded conv takes the scale only as w * (n + b / w): with some |w| below the floor nothing is folded."""
    norm = _layer_norm(4, 1)
    with torch.no_grad():
        norm.weight[2] = FOLD_MIN_SCALE / 10
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=4).double()
    before = conv.weight.detach().clone()
    deploy = RsqrtLayerNorm(norm)
    fold_into_conv(deploy, conv)
    assert deploy.weight is not None and deploy.bias is not None and torch.equal(conv.weight, before)


def test_gab_skips_the_resize_when_sizes_match():
    """xh already at xl's size: no resize op, same numbers as GAB."""
    torch.manual_seed(0)
    gab = perturb_(GAB(16, 8)).double().eval()
    xh, xl, mask = (torch.randn(1, c, 8, 8, dtype=torch.float64) for c in (16, 8, 1))
    deploy = DeployGAB(gab).eval()
    with torch.no_grad():
        assert torch.allclose(deploy(xh, xl, mask), gab(xh, xl, mask), atol=1e-12, rtol=0)
    kinds = {n.kind() for n in torch.jit.trace(deploy, (xh, xl, mask)).inlined_graph.nodes()}
    assert "aten::upsample_bilinear2d" not in kinds


def test_folded_deploy_form_equals_the_model():
    """The whole deploy form, every rewrite on, equals EGEUNet in float64 on trained-like weights."""
    torch.manual_seed(0)
    model = perturb_(EGEUNet(SMALL).eval()).double()
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64) * 255
    with torch.no_grad():
        assert (deploy_form(model, 64)(x) - model(x)).abs().max().item() <= 1e-10


def test_every_norm_of_the_deploy_form_is_a_declared_float_module():
    """FLOAT_MODULES names every normalisation class the deploy form contains (the int8 recipe keeps them float)."""
    deploy = deploy_form(EGEUNet(SMALL), 64)
    kinds = {type(m) for m in deploy.modules()}
    assert LayerNorm2d not in kinds
    norms = {k for k in kinds if "Norm" in k.__name__}
    assert norms == {nn.GroupNorm, RsqrtLayerNorm} and norms <= set(FLOAT_MODULES)
