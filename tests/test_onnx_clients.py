"""The exported ONNX runs in the other clients people use: OpenCV DNN (default engine) and ``onnx.reference``.

One fp32 + int8 ONNX export of a lightly trained model at 128 x 128; each artifact runs in ONNX Runtime and
in both clients on two held-out images (``onnx.reference`` is pure numpy: about 1 s per image here).
128, not test_export's 64: OpenCV 5.0's fused int8 convolution is wrong on feature maps whose side is not a
multiple of 4 (EGE-UNet's deepest map is size / 32: 2 x 2 at 64), see export/onnx_portable.py.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from egeunet.runtime.runners.onnx_runner import OnnxRunner
from egeunet.export import ExportSpec, export_all
from egeunet.export.data import synthetic_sets
from egeunet.export.onnx_portable import CLIENTS, PORTABLE_OPSET, make_portable, run_client
from egeunet.accuracy import Gate, compare
from kernels import unfused_onnxruntime
from test_export import N_CALIB, N_HELD, TEST_GATES

# once is enough (plumbing): each verdict compares a client with ONNX Runtime's unfused QDQ arithmetic on the same
# .onnx file (or checks the file's ops); neither runtime reads PyTorch's kernel settings, which only change the file
# (its export is judged on them by tests/test_export.py in scripts/test.sh's second run)
pytestmark = [pytest.mark.numeric, pytest.mark.plumbing]

SIZE = 128  # the smallest size whose deepest feature map (size / 32) OpenCV's int8 convolution computes right
N_IMAGES = 2
# These tests check that the clients run the files, not int8 accuracy: the int8 gate only stops a broken build
# (measured on this model: IoU drop 0.5 points on AVX-512 VNNI, 3.2 on AVX2, whose int8 ONNX Runtime kernels saturate)
PLUMBING_GATES = {**TEST_GATES, "int8": Gate(min_agreement=0.9)}


@pytest.fixture(scope="module")
def exported(light_checkpoint, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clients")
    export_all(light_checkpoint(SIZE), folder, spec=ExportSpec(gates=PLUMBING_GATES), formats="onnx",
               precisions="fp32,int8", n_calib=N_CALIB, n_held=N_HELD, golden=False, progress=False)
    return folder


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    """Held-out synthetic images (seed 7: neither the training seed 100 nor the export's seed 0), as the graph takes them."""
    _, held = synthetic_sets(SIZE, 1, N_IMAGES, seed=7)
    return held.canonical()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_client_matches_onnxruntime(exported, inputs, client, precision):
    path = exported / f"egeunet_{precision}.onnx"
    reference = OnnxRunner(path).predict(inputs) if precision == "fp32" else unfused_onnxruntime(path, inputs)
    out = run_client(client, path, inputs)
    assert out.shape == reference.shape
    if precision == "fp32":
        assert np.abs(out - reference).max() <= 1e-4
    else:
        assert 0.02 < (reference > 0.5).mean() < 0.98, "a near-empty or near-full mask would make agreement meaningless"
        assert compare(out[:, 0], reference[:, 0]).agreement >= 0.99


def test_int8_is_portable_form(exported):
    model = onnx.load(str(exported / "egeunet_int8.onnx"))
    ops = Counter(n.op_type for n in model.graph.node)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == PORTABLE_OPSET and ops["MaxPool"] == 0 and ops["ReduceMax"] == 5 and ops["QuantizeLinear"] > 0


def test_make_portable_keeps_onnxruntime_outputs():
    """The rewrite is exact in ONNX Runtime: MaxPool at opset 18 == ReduceMax over windows at opset 19."""
    import onnxruntime as ort

    x = np.random.default_rng(0).uniform(-3, 3, (2, 4, 8, 12)).astype(np.float32)
    node = onnx.helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    graph = onnx.helper.make_graph([node], "pool", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                                       ["n", 4, 8, 12])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    make_portable(model)
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Reshape", "ReduceMax"]
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    expected = x.reshape(2, 4, 4, 2, 6, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(got, expected)


def test_make_portable_refuses_overlapping_pooling():
    from egeunet.errors import EGEUNetError

    node = onnx.helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    graph = onnx.helper.make_graph([node], "pool", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                                       [1, 4, 8, 8])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    with pytest.raises(EGEUNetError, match="MaxPool y .*kernel \\[3, 3\\]"):
        make_portable(model)
