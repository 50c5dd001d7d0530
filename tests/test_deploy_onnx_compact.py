"""ONNX compaction of the deploy form: fewer bytes, the same function as PyTorch (small model, 128 px, seconds)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from egeunet import EGEUNet
from egeunet.export.deploy import deploy_form
from egeunet.export.onnx_compact import centre_group_norms, channel_means_as_conv, compact, drop_zero_points
from egeunet.export.onnx_export import _to_onnx
from egeunet.export.spec import ExportSpec
from egeunet.model import EGEUNetConfig

SIZE = 128  # the first GHPA sees 16x16: its map is larger than the 8x8 parameter and goes into the graph


def _ort(model, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(3)
    model = EGEUNet(EGEUNetConfig(channels=(4, 8, 12, 16, 24, 32))).eval()
    with torch.no_grad():  # non-trivial norms and attention parameters, so folding errors would show
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    deploy = deploy_form(model, SIZE)
    path = tmp_path_factory.mktemp("onnx") / "fp32.onnx"
    _to_onnx(deploy, ExportSpec(size=SIZE), str(path))
    x = torch.rand(2, 3, SIZE, SIZE) * 255
    with torch.no_grad():
        expected = deploy(x).numpy()
    return deploy, onnx.load(str(path)), x.numpy(), expected


def test_compact_keeps_the_function_and_shrinks(exported):
    deploy, model, x, expected = exported
    def data_bytes(m) -> int:
        return sum(i.ByteSize() for i in m.graph.initializer)

    compacted = onnx.ModelProto()
    compacted.CopyFrom(model)
    counts = compact(compacted, deploy, ort_only=True)
    onnx.checker.check_model(compacted)
    large_maps = [n for n, m in deploy.named_modules() if getattr(m, "xy_source", None) is not None]
    assert large_maps and counts["maps_in_graph"] == len(large_maps)
    assert counts["channel_means_as_conv"] > 0 and counts["group_norms_centred"] == 10
    names = {i.name for i in compacted.graph.initializer}
    assert not {f"{n}.map0" for n in large_maps} & names
    assert data_bytes(compacted) < data_bytes(model)  # at 256 px: fp32 277 -> 248 KB (scripts/bench_export.py)
    assert not any(n.op_type == "ReduceMean" and list(n.attribute[0].ints) == [1] for n in compacted.graph.node)
    error, plain_error = (np.abs(_ort(m, x) - expected).max() for m in (compacted, model))
    print(f"max |dprob| vs PyTorch: compacted {error:.2e}, as exported {plain_error:.2e}")
    assert error < 1e-3 and error <= 1.25 * plain_error


def test_centred_group_norm_is_closer_to_float64():
    rng = np.random.default_rng(0)
    x = rng.normal(20.0, 0.5, (1, 2, 4096)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-5)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4096])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4096])],
        [numpy_helper.from_array(np.ones(2, np.float32), "s"), numpy_helper.from_array(np.zeros(2, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x64 = x.astype(np.float64)
    truth = (x64 - x64.mean(2, keepdims=True)) / np.sqrt(x64.var(2, keepdims=True) + 1e-5)
    plain_error = np.abs(_ort(model, x) - truth).max()
    assert centre_group_norms(model) == 1 and channel_means_as_conv(model) == 0
    assert np.abs(_ort(model, x) - truth).max() < plain_error


def test_drop_zero_points_keeps_dequantized_values():
    weight = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["w", "scale", "zp"], ["y"], axis=0),
         helper.make_node("DequantizeLinear", ["w", "scale", "zp1"], ["z"], axis=0)], "g", [],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 4]) for n in ("y", "z")],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.float32([0.5, 0.25, 2.0]), "scale"),
         numpy_helper.from_array(np.zeros(3, np.int8), "zp"), numpy_helper.from_array(np.int8([0, 1, 0]), "zp1")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import onnxruntime as ort

    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})
    assert drop_zero_points(model) == 1
    assert {i.name for i in model.graph.initializer} == {"w", "scale", "zp1"}
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
