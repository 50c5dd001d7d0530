"""A GHPA height-width attention map as ONNX nodes over its 8x8 parameter, in ops every ONNX client runs.

The map is ``conv1x1(GELU(dw3x3(bilinear(P))))`` of a constant ``P`` (c x 8 x 8). As convolutions of a constant,
OpenCV DNN 5.0 cannot run it (its convolution asserts a blocked-layout data input), so the linear part is written
as matrix products: bilinear resizing is ``U P U^T`` (``U``: H x 8), a zero-padded 3x3 tap ``(i, j)`` shifts rows
and columns, so ``dw3x3(U P U^T) = sum_ij k_ij A_i P A_j^T`` with ``A_i`` = ``U`` shifted by ``i - 1`` rows. Two
MatMuls (each with its constant 2-D factor on the right: OpenCV 5.0 broadcasts a left 3-D factor wrongly) give every
``A_i P A_j^T``, a Mul and ReduceSum weight and sum the nine taps, the 1x1 convolution is a MatMul. The factors
``[A_0 A_1 A_2]`` are three slices of one stored zero-padded ``U``, shared by the maps of one size. All inputs are
constants: ONNX Runtime folds the nodes into the map when it loads the file. ORT, OpenCV DNN and ``onnx.reference``
agree with PyTorch's map to 1e-6 (demo model).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from egeunet.model.layers import upsample_to

TAPS = 3  # the depthwise kernel's side


def padded_upsampling(grid: int, length: int) -> np.ndarray:
    """``U`` (length + 2, grid): the bilinear (align_corners) resize matrix from ``grid`` to ``length`` with a zero
    row before and after; rows ``i .. i + length`` of it are ``A_i``, the resize shifted for 3-tap row ``i``."""
    basis = torch.eye(grid, dtype=torch.float64).view(1, grid, grid, 1)
    resize = upsample_to(basis, (length, 1))[0, :, :, 0].T.numpy()  # (length, grid): column k resizes e_k
    return np.pad(resize, ((1, 1), (0, 0))).astype(np.float32)


def shift_factor_nodes(grid: int, length: int) -> tuple[list, list]:
    """Nodes and initializers giving ``[A_0 A_1 A_2]^T`` (grid, 3 length) as ``resize/{grid}x{length}``: three
    slices of the stored padded ``U^T`` (a third of the bytes), concatenated."""
    from onnx import helper, numpy_helper

    name = f"resize/{grid}x{length}"
    bounds = {f"{name}/{kind}{i}": np.array([i + (length if kind == "end" else 0)], np.int64)
              for kind in ("start", "end") for i in range(TAPS)}
    inits = [numpy_helper.from_array(padded_upsampling(grid, length).T.copy(), f"{name}/padded"),
             numpy_helper.from_array(np.array([1], np.int64), f"{name}/axis")]
    inits += [numpy_helper.from_array(v, k) for k, v in bounds.items()]
    nodes = [helper.make_node("Slice", [f"{name}/padded", f"{name}/start{i}", f"{name}/end{i}", f"{name}/axis"],
                              [f"{name}/{i}"]) for i in range(TAPS)]
    nodes.append(helper.make_node("Concat", [f"{name}/{i}" for i in range(TAPS)], [name], axis=1))
    return nodes, inits


def is_plane_dw(conv: nn.Module | None) -> bool:
    """Whether ``conv`` is GHPA's map convolution this module rewrites: depthwise 3x3 (padding 1), exact GELU, 1x1."""
    if not isinstance(conv, nn.Sequential) or len(conv) != 3:
        return False
    dw, gelu, pw = conv
    return (isinstance(dw, nn.Conv2d) and dw.kernel_size == (TAPS, TAPS) and dw.padding == (1, 1)
            and dw.dilation == (1, 1) and dw.stride == (1, 1) and dw.groups == dw.in_channels == dw.out_channels
            and dw.bias is not None and isinstance(gelu, nn.GELU) and gelu.approximate == "none"
            and isinstance(pw, nn.Conv2d) and pw.kernel_size == (1, 1) and pw.bias is not None)


def int8_constant(value: np.ndarray, name: str, axis: int) -> tuple[list, list]:
    """Nodes and initializers giving the float32 ``value`` as ``name`` from symmetric int8 with one scale per index
    of ``axis``: ``Cast(q) * scale``, which ONNX Runtime folds into a constant at load (a DequantizeLinear of an
    initializer it does not fold, so that would run at every inference). Rounding: at most half a scale step."""
    from onnx import TensorProto, helper, numpy_helper

    peak = np.abs(value).max(axis=tuple(a for a in range(value.ndim) if a != axis), keepdims=True)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    quantized = np.clip(np.round(value / scale), -127, 127).astype(np.int8)
    inits = [numpy_helper.from_array(quantized, f"{name}/q"), numpy_helper.from_array(scale, f"{name}/scale")]
    nodes = [helper.make_node("Cast", [f"{name}/q"], [f"{name}/float"], to=TensorProto.FLOAT),
             helper.make_node("Mul", [f"{name}/float", f"{name}/scale"], [name])]
    return nodes, inits


def map_nodes(params: torch.Tensor, conv: nn.Sequential, size: tuple[int, int], name: str,
              int8_params: bool = False) -> tuple[list, list]:
    """ONNX nodes and initializers computing the (1, c, H, W) map ``conv(upsample_to(params, size))`` as
    ``name``; other values are named ``name/...`` except the resize factors, named by their sizes (``resize/8x32``)
    so maps of one size share them. ``int8_params``: the 8x8 parameter stored in int8 (``int8_constant``)."""
    from onnx import helper, numpy_helper

    dw, _, pw = conv
    channels, grid = params.shape[1], params.shape[2]
    height, width = size
    values = {
        "Pt": params.detach().numpy()[0].transpose(0, 2, 1),  # (c, 8, 8), each channel transposed
        "taps_shape": np.array([channels, TAPS, height, TAPS, width], np.int64),
        "K": dw.weight.detach().numpy().reshape(channels, TAPS, 1, TAPS, 1),
        "sum_axes": np.array([1, 3], np.int64),
        "dw_bias": dw.bias.detach().numpy().reshape(channels, 1, 1),
        "sqrt2": np.array(np.sqrt(2.0), np.float32), "one": np.array(1.0, np.float32),
        "half": np.array(0.5, np.float32),
        "flat": np.array([channels, height * width], np.int64),
        "W": pw.weight.detach().numpy().reshape(pw.out_channels, channels),
        "pw_bias": pw.bias.detach().numpy().reshape(pw.out_channels, 1),
        "map_shape": np.array([1, pw.out_channels, height, width], np.int64),
    }
    computed = ["rows_t", "rows", "taps", "taps5", "weighted", "dw", "dwb", "scaled", "erf", "erf1", "gelu_x", "gelu",
                "gelu_flat", "mixed", "mixed_b"]
    n = {key: f"{name}/{key}" for key in list(values) + computed}
    n["Aht"], n["Awt"] = f"resize/{grid}x{height}", f"resize/{grid}x{width}"
    nodes, inits = int8_constant(values.pop("Pt"), n["Pt"], axis=0) if int8_params else ([], [])
    inits += [numpy_helper.from_array(np.asarray(v), n[k]) for k, v in values.items()]
    for length in sorted({height, width}):
        factor_nodes, factor_inits = shift_factor_nodes(grid, length)
        nodes, inits = nodes + factor_nodes, inits + factor_inits
    nodes += [
        helper.make_node("MatMul", [n["Pt"], n["Aht"]], [n["rows_t"]]),  # (c, 8, 3H): (A_i P)^T
        helper.make_node("Transpose", [n["rows_t"]], [n["rows"]], perm=[0, 2, 1]),
        helper.make_node("MatMul", [n["rows"], n["Awt"]], [n["taps"]]),  # (c, 3H, 3W): A_i P A_j^T
        helper.make_node("Reshape", [n["taps"], n["taps_shape"]], [n["taps5"]]),
        helper.make_node("Mul", [n["taps5"], n["K"]], [n["weighted"]]),
        helper.make_node("ReduceSum", [n["weighted"], n["sum_axes"]], [n["dw"]], keepdims=0),  # (c, H, W)
        helper.make_node("Add", [n["dw"], n["dw_bias"]], [n["dwb"]]),
        helper.make_node("Div", [n["dwb"], n["sqrt2"]], [n["scaled"]]),  # GELU(x) = x (1 + erf(x / sqrt 2)) / 2
        helper.make_node("Erf", [n["scaled"]], [n["erf"]]),
        helper.make_node("Add", [n["erf"], n["one"]], [n["erf1"]]),
        helper.make_node("Mul", [n["dwb"], n["erf1"]], [n["gelu_x"]]),
        helper.make_node("Mul", [n["gelu_x"], n["half"]], [n["gelu"]]),
        helper.make_node("Reshape", [n["gelu"], n["flat"]], [n["gelu_flat"]]),
        helper.make_node("MatMul", [n["W"], n["gelu_flat"]], [n["mixed"]]),  # the 1x1 convolution
        helper.make_node("Add", [n["mixed"], n["pw_bias"]], [n["mixed_b"]]),
        helper.make_node("Reshape", [n["mixed_b"], n["map_shape"]], [name]),
    ]
    return nodes, inits
