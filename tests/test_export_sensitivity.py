"""Per-layer int8 sensitivity and the keep-in-float search, on a real small ONNX model quantized by ORT.

``compare`` (egeunet.accuracy) is the one scoring every ranking uses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from egeunet.export.onnx_export import quantize
from egeunet.export.sensitivity import (keep_float_until, named_copy, onnx_evaluator, onnx_sensitivity,
                                        quantized_op_types, rank_layers, sensitivity_for)
from egeunet.runtime.artifacts import Artifact, Target
from egeunet.runtime.runners import open_runner


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A three-convolution segmentation net in ONNX (canonical I/O at 256), its int8 QDQ copy, inputs, fp32 output."""
    root = tmp_path_factory.mktemp("sens")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 1), torch.nn.Sigmoid()).eval()
    with torch.no_grad():
        net[0].weight.mul_(0.02)
    fp32 = root / "tiny.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 256, 256) * 255,), str(fp32),
                      opset_version=18, verbose=False, external_data=False,
                      input_names=["image"], output_names=["prob"], dynamic_axes={"image": {0: "n"}, "prob": {0: "n"}})
    inputs = (np.random.default_rng(0).random((6, 3, 256, 256)) * 255).astype(np.float32)
    reference = open_runner(fp32).probabilities(inputs)
    int8 = quantize(fp32, root / "tiny_int8.onnx", inputs[3:])
    return fp32, int8, inputs, reference, root


def test_sensitivity_ranks_every_quantized_layer(tiny):
    fp32, int8, inputs, reference, _ = tiny
    assert quantized_op_types(int8) == {"Conv"}
    report = onnx_sensitivity(fp32, int8, inputs, reference, "tiny-int8")
    ranking = report["ranking"]
    assert report["layers"] == 3 and len(ranking) == 3
    assert [r["agreement"] for r in ranking] == sorted(r["agreement"] for r in ranking)
    assert all(0 <= r["agreement"] <= 1 and r["mean_abs_dprob"] >= 0 for r in ranking)
    assert {r["weights"] for r in ranking} == {"8x3x3x3", "8x8x3x3", "1x8x1x1"}


def test_keep_float_until_stops_at_the_first_k_within_budget():
    ranked = ["a", "b", "c", "d"]
    choice = keep_float_until(ranked, lambda excluded: excluded, lambda ex: 0.9 + 0.03 * len(ex),
                              lambda result: result >= 0.95)
    assert choice["met"] and choice["float_layers"] == ["a", "b"] and len(choice["trials"]) == 3
    never = keep_float_until(ranked, lambda ex: ex, lambda ex: 0.5, lambda r: r > 0.9, max_float=2)
    assert not never["met"] and never["float_layers"] == ["a", "b"] and len(never["trials"]) == 3
    ranking_calls = []
    lazy = keep_float_until(lambda: ranking_calls.append(1) or ranked, lambda ex: ex, lambda ex: 1.0,
                            lambda result: result >= 0.95)
    assert lazy["met"] and lazy["float_layers"] == [] and not ranking_calls  # no ranking when full int8 is enough


def test_keep_float_until_with_ort_meets_an_exact_budget(tiny):
    fp32, _, inputs, reference, root = tiny
    named = root / "named.onnx"
    layers = [layer["layer"] for layer in named_copy(fp32, named, {"Conv"})]
    files = iter(root / f"q{i}.onnx" for i in range(100))

    def write(**nodes):
        return quantize(named, next(files), inputs[3:], cache=root / "calibration.json", **nodes)

    evaluate = onnx_evaluator(inputs[:3], reference[:3])
    ranked = [r["layer"] for r in rank_layers(layers, lambda layer: write(nodes_to_quantize=[layer]), evaluate)]

    def quantize_excluding(excluded: list[str]):
        return write(nodes_to_exclude=excluded)

    choice = keep_float_until(ranked, quantize_excluding, evaluate, lambda result: result.max_abs_dprob < 1e-6)
    assert choice["met"] and choice["float_layers"] == ranked  # only all-float output is exact
    assert choice["trials"][0]["result"].max_abs_dprob > 1e-6


def test_sensitivity_for_reports_every_int8_artifact(tiny):
    fp32, int8, inputs, reference, root = tiny
    targets = [Target(Artifact("tiny.onnx", fp32, "onnx", "fp32"), "onnxruntime"),
               Target(Artifact("tiny_int8.onnx", int8, "onnx", "int8"), "onnxruntime"),
               Target(Artifact("tiny_int8.tflite", root / "tiny_int8.tflite", "tflite", "int8"), "litert")]
    reports = {r["artifact"]: r for r in sensitivity_for(targets, inputs, reference)}
    assert len(reports["tiny_int8.onnx"]["ranking"]) == 3 and reports["tiny_int8.onnx"]["source"] == "tiny.onnx"
    assert reports["tiny_int8.tflite"]["note"].startswith("not ranked")
