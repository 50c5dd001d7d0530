"""ONNX Runtime, LiteRT and CoreML runners: file-type dispatch, contract-driven I/O, threads, clear errors.

Conversions that need minutes live in test_export.py (every artifact there is run through these
runners); here one quick ONNX export and the I/O conversions themselves.
"""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from egeunet import EGEUNet
from egeunet.runtime.runners import list_runtimes, open_runner
from egeunet.errors import EGEUNetError
from egeunet.export import deploy_form, get_format
from egeunet.export.data import synthetic_sets
from egeunet.runtime.contract import ArtifactIO
from egeunet.export.spec import ExportSpec
from egeunet.preprocess import preprocess

SIZE = 64


@pytest.fixture(scope="module")
def model() -> EGEUNet:
    torch.manual_seed(0)
    net = EGEUNet().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.03)
    return net


@pytest.fixture(scope="module")
def onnx_files(model, tmp_path_factory) -> dict[str, Path]:
    """fp32 ONNX exports: plain NCHW float and NHWC with baked preprocessing."""
    out = tmp_path_factory.mktemp("onnx")
    exporter = get_format("onnx")
    files = {}
    for name, spec in (("nchw", ExportSpec(size=SIZE)), ("baked", ExportSpec(size=SIZE, nhwc=True, bake_preprocess=True))):
        deploy = deploy_form(model, SIZE, spec.bake_preprocess, spec.nhwc)
        files[name] = exporter.export(deploy, spec, out / f"{name}.onnx", exporter.recipes("fp32", spec)[0])
    return files


def test_every_runtime_has_a_runner_module():
    assert {"onnxruntime", "litert", "coreml"} <= set(list_runtimes())


def test_onnx_runner_matches_pytorch_and_reads_its_contract(model, onnx_files):
    _, held = synthetic_sets(SIZE, 1, 3)
    x = held.canonical()
    runner = open_runner(onnx_files["nchw"], threads=1)
    assert runner.describe()["runtime"] == "onnxruntime" and runner.input_size == SIZE
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = runner.predict(x)
    assert got.shape == (3, 1, SIZE, SIZE) and np.abs(got - want).max() <= 1e-4
    assert np.abs(runner.predict_image(held.images[0]) - want[0, 0]).max() <= 1e-4


def test_onnx_contract_records_and_the_runner_follows_the_recommended_options(onnx_files, tmp_path):
    """The export writes ORT's recommended options into the contract; the runner uses the artifact's own list."""
    import json

    import onnx

    from egeunet.runtime.contract import CONTRACT_KEY
    from egeunet.runtime.runners.onnx_runner import DISABLED_OPTIMIZERS

    runner = open_runner(onnx_files["nchw"], threads=1)
    assert runner.describe()["disabled_optimizers"] == DISABLED_OPTIMIZERS == ["NchwcTransformer"]
    model = onnx.load(str(onnx_files["nchw"]))
    entry = next(p for p in model.metadata_props if p.key == CONTRACT_KEY)
    contract = json.loads(entry.value)
    assert contract["runtime_options"] == {"onnxruntime": {"disabled_optimizers": DISABLED_OPTIMIZERS}}
    contract["runtime_options"]["onnxruntime"]["disabled_optimizers"] = []  # an artifact that wants every pass
    entry.value = json.dumps(contract)
    other = tmp_path / "all_passes.onnx"
    onnx.save(model, str(other))
    assert open_runner(other, threads=1).describe()["disabled_optimizers"] == []


def test_onnx_runner_opens_with_ort_defaults_when_asked(onnx_files):
    """ort_options="default" disables nothing, still names the artifact's recommendation, and computes the same."""
    x = synthetic_sets(SIZE, 1, 2)[1].canonical()
    recommended = open_runner(onnx_files["nchw"], threads=1)
    default = open_runner(onnx_files["nchw"], threads=1, options={"ort_options": "default"})
    described = default.describe()
    assert described["ort_options"] == "default" and described["disabled_optimizers"] == []
    assert described["recommended_disabled_optimizers"] == ["NchwcTransformer"]
    assert described["recommended_from"] == "artifact contract"
    assert recommended.describe()["ort_options"] == "recommended"
    assert np.abs(default.predict(x) - recommended.predict(x)).max() <= 1e-4  # other kernels, other rounding: fp32 gate
    with pytest.raises(EGEUNetError, match="ort_options must be one of recommended, default"):
        open_runner(onnx_files["nchw"], options={"ort_options": "fast"})
    with pytest.raises(EGEUNetError, match="runtime 'onnxruntime' takes no option 'bogus'"):
        open_runner(onnx_files["nchw"], options={"bogus": 1})


def test_baked_runner_feeds_uint8_pixels(onnx_files):
    """predict_image on a model-size uint8 image feeds it unchanged; predict rounds the canonical input."""
    _, held = synthetic_sets(SIZE, 1, 2)
    plain, baked = open_runner(onnx_files["nchw"]), open_runner(onnx_files["baked"])
    assert baked.describe()["baked_preprocess"] and baked.describe()["layout"] == "NHWC"
    for image in held.images:
        assert np.abs(plain.predict_image(image) - baked.predict_image(image)).max() <= 1e-4
    big = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    assert baked.predict_image(big).shape == (SIZE, SIZE)
    assert baked.predict(preprocess(big, SIZE)).shape == (1, 1, SIZE, SIZE)


def test_artifact_io_int8_and_layout_round_trip():
    io = ArtifactIO(size=4, layout="NHWC", input_scale=2.0, input_zero_point=-3, output_scale=0.5, output_zero_point=1)
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4) % 200
    q = io.canonical_input(x)
    assert q.dtype == np.int8 and q.shape == (2, 4, 4, 3)
    assert np.allclose((q.astype(np.float32) + 3) * 2.0, np.clip(np.rint(x / 2) - 3, -128, 127).transpose(0, 2, 3, 1) * 2 + 6)
    out = io.output(np.full((2, 4, 4, 1), 5, np.int8))
    assert out.shape == (2, 1, 4, 4) and np.all(out == 2.0)


def test_missing_file_and_wrong_type_are_one_line_errors(tmp_path):
    with pytest.raises(EGEUNetError, match="no such file"):
        open_runner(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(EGEUNetError, match="onnxruntime cannot load it"):
        open_runner(bad)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not tflite")
    with pytest.raises(EGEUNetError, match="LiteRT cannot load it"):
        open_runner(bad)


@pytest.mark.skipif(platform.system() == "Darwin", reason="on macOS the CoreML runner can predict")
def test_coreml_runner_says_it_needs_macos(tmp_path):
    package = tmp_path / "m.mlpackage"
    package.mkdir()
    with pytest.raises(EGEUNetError, match="not runnable here: CoreML prediction needs macOS"):
        open_runner(package)
