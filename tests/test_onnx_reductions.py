"""No exported ONNX graph sums more than ``INT8_MEAN_MAX`` values in one reduction, and the files still compute the model.

onnxruntime-web sums a long reduction sequentially in float32: PyTorch's GroupNorm, exported as one
InstanceNormalization over 131,072 values at 256 px, put group means 3.5e-2 off in the browser and flipped 5-8% of an
int8 file's mask pixels (tests/test_web_demo.py). ``egeunet.model.deploy.for_onnx`` writes GroupNorm's statistics as staged
means instead (``staged_group_mean``, as LiteRT's int8 copy). At 128 px the first GroupNorm's groups hold 2 x 128 x 128
= 32,768 values, so the PyTorch form fails this check (the check is tested on it too).
"""
from __future__ import annotations

from math import prod
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from egeunet import EGEUNet, load_model
from egeunet.export import export_all
from egeunet.export.data import synthetic_sets
from egeunet.model.deploy import deploy_form
from egeunet.export.onnx_export import _to_onnx
from egeunet.export.spec import ExportSpec
from egeunet.model.layers import INT8_MEAN_MAX
from egeunet.runtime.runners.onnx_runner import OnnxRunner
from test_export import TEST_GATES

pytestmark = [pytest.mark.numeric, pytest.mark.plumbing]  # reduction lengths are graph structure: once is enough

SIZE = 128
SUMMING_REDUCES = ("ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum",
                   "ReduceLogSumExp")
PER_INSTANCE = ("InstanceNormalization", "GlobalAveragePool")  # reduce every axis after N and C


def reduction_lengths(model: onnx.ModelProto) -> dict[str, int]:
    """How many values each summing reduction of ``model`` combines per output value, by node (shape inference with
    data propagation at batch 1; an axis it cannot size counts as unknown, -1). Max and min reductions are exact: not
    listed."""
    batch_one = onnx.ModelProto()
    batch_one.CopyFrom(model)
    for value in (*batch_one.graph.input, *batch_one.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1  # the dynamic batch: reshapes after it get sized too
    inferred = onnx.shape_inference.infer_shapes(batch_one, data_prop=True).graph
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
              for v in (*inferred.value_info, *inferred.input)}
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    lengths = {}
    for index, node in enumerate(model.graph.node):
        if node.op_type not in SUMMING_REDUCES + PER_INSTANCE:
            continue
        shape = shapes.get(node.input[0], [])
        if node.op_type in PER_INSTANCE:
            axes = range(2, len(shape))
        else:
            attribute = [list(a.ints) for a in node.attribute if a.name == "axes"]
            axes = attribute[0] if attribute else (constants[node.input[1]].tolist() if len(node.input) > 1
                                                    else range(len(shape)))
        dims = [shape[a] for a in axes] if shape else [-1]
        lengths[f"{index}:{node.op_type}:{node.name}"] = -1 if min(dims) < 0 else prod(dims)
    return lengths


@pytest.fixture(scope="module")
def exported(light_checkpoint, tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """The default ONNX export (fp32, int8) of a lightly trained model at 128 px (conftest.py), and that model."""
    folder = tmp_path_factory.mktemp("reductions")
    checkpoint = light_checkpoint(SIZE)
    export_all(checkpoint, folder, spec=ExportSpec(gates=TEST_GATES), formats="onnx", precisions="fp32,int8",
               n_calib=8, n_held=4, golden=False,
               progress=False)  # raises when an artifact misses its gate (fp32: against the model in float64)
    return folder, load_model(checkpoint)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_exported_graph_has_no_long_reduction(exported, precision):
    lengths = reduction_lengths(onnx.load(str(exported[0] / f"egeunet_{precision}.onnx")))
    assert lengths and all(0 < n <= INT8_MEAN_MAX for n in lengths.values()), \
        {k: n for k, n in lengths.items() if not 0 < n <= INT8_MEAN_MAX}


def test_check_sees_pytorch_group_norm(tmp_path):
    """The plain deploy form (PyTorch's GroupNorm, one InstanceNormalization per norm) fails the check above."""
    path = tmp_path / "plain.onnx"
    _to_onnx(deploy_form(EGEUNet(), SIZE), ExportSpec(size=SIZE), str(path))
    lengths = reduction_lengths(onnx.load(str(path)))
    assert max(lengths.values()) == 2 * SIZE * SIZE > INT8_MEAN_MAX


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_exported_graph_matches_pytorch(exported, precision):
    folder, model = exported
    _, held = synthetic_sets(SIZE, 1, 4, seed=7)  # neither the training seed 100 nor the export's seed 0
    x = held.canonical()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = OnnxRunner(folder / f"egeunet_{precision}.onnx").predict(x)
    if precision == "fp32":
        assert np.abs(got - want).max() <= TEST_GATES["fp32"].max_abs_dprob
    else:
        assert ((got > 0.5) == (want > 0.5)).mean() >= TEST_GATES["int8"].min_agreement
