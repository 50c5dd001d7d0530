"""Quantization recipes are data, and the built artifact keeps exactly the float regions its recipe declares."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from egeunet import EGEUNet
from egeunet.export import get_format
from egeunet.export.data import synthetic_sets
from egeunet.model.deploy import FLOAT_MODULES, deploy_form, for_litert
from egeunet.export.recipes import Recipe, deploy_float_regions
from egeunet.export.spec import ExportSpec

SIZE = 64


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """A deploy form, its full-int8 recipe, its fp32 flatbuffer and two untrimmed full-int8 ones: per the recipe, and
    all-int8 (one fp32 conversion, about 20 s, for the whole module)."""
    from egeunet.export import tflite_export

    torch.manual_seed(1)  # a model on which keeping six convolutions float beats full int8 (the drift-budget test)
    deploy = deploy_form(EGEUNet().eval(), SIZE)
    calib, _ = synthetic_sets(SIZE, 4, 1)
    spec = ExportSpec(size=SIZE, calibration=calib)
    exporter = get_format("tflite")
    full = next(r for r in exporter.recipes("int8", spec) if r.static)
    root = tmp_path_factory.mktemp("recipes")
    fp32 = root / "fp32.tflite"
    fp32.write_bytes(exporter._fp32_bytes(deploy))
    built = {"fp32": fp32.read_bytes()}
    for name, recipe in (("recipe", full), ("all-int8", dataclasses.replace(full, float_regions=()))):
        tflite_export._quantize(str(fp32), str(root / f"{name}.tflite"), recipe, spec)
        built[name] = (root / f"{name}.tflite").read_bytes()
    return deploy, full, built


def test_recipes_describe_their_numerics():
    spec = ExportSpec(size=SIZE)
    tflite = {r.name: r for r in get_format("tflite").recipes("int8", spec)}
    assert tflite["int8-dynamic"].weights == "int8" and not tflite["int8-dynamic"].static
    assert tflite["int8"].static and tflite["int8"].io == "float32" and tflite["int8"].scales == "calibration"
    assert tflite["int8"].float_regions == deploy_float_regions() and not tflite["int8"].integer_only
    assert next(iter(get_format("tflite").recipes("int8", spec, int8_io=True)[1:])).io == "int8"
    onnx = get_format("onnx").recipes("int8", spec)[0]
    assert onnx.int8_ops == ("Conv",) and onnx.describe()["integer_only"] is False
    assert get_format("coreml").recipes("fp16", spec)[0].activations == "float16"
    with pytest.raises(ValueError):
        Recipe("x", "int8", weights="int4")


def test_float_regions_are_the_deploy_forms_own_modules():
    assert deploy_float_regions() == tuple(f"{c.__module__}.{c.__qualname__}" for c in FLOAT_MODULES)
    deploy = deploy_form(EGEUNet().eval(), SIZE)
    present = {f"{type(m).__module__}.{type(m).__qualname__}" for form in (deploy, for_litert(deploy))
               for m in form.modules()}
    assert set(deploy_float_regions()) - present <= {"egeunet.model.deploy.MinMaxStretch"}  # only baked forms


def test_built_artifact_matches_its_recipe_float_set(quantized):
    from egeunet.export.tflite_export import float_region_problems

    deploy, recipe, built = quantized
    assert float_region_problems(built["recipe"], recipe, deploy) == []
    problems = float_region_problems(built["all-int8"], recipe, deploy)  # the recipe says float, the file is int8
    assert problems and all("computes in int8" in p for p in problems)
    renamed = dataclasses.replace(recipe, float_regions=("torch.nn.modules.normalization.GroupNorm",))
    assert float_region_problems(built["recipe"], renamed, deploy) == []
    gone = dataclasses.replace(recipe, float_regions=("egeunet.model.deploy.RsqrtLayerNorm",))
    stripped = built["recipe"].replace(b"RsqrtLayerNorm_", b"RsqrtLayerNormX")  # a converter that renamed scopes
    assert any("matches no op" in p for p in float_region_problems(stripped, gone, deploy))


def test_integer_only_is_proven_by_walking_the_flatbuffer(quantized):
    from egeunet.export.tflite_export import integer_only_problems

    _, _, built = quantized
    assert integer_only_problems(built["all-int8"]) == []  # only the input QUANTIZE and output DEQUANTIZE are float
    mixed = integer_only_problems(built["recipe"])  # float norms: float ops and inner (de)quantizations
    assert any("FLOAT32" in p for p in mixed) and any(p.startswith(("QUANTIZE", "DEQUANTIZE")) for p in mixed)
    integer = next(r for r in get_format("tflite").recipes("int8", ExportSpec(size=SIZE)) if r.name == "int8-integer")
    assert integer.integer_only and integer.optional and integer.float_regions == ()


def test_tflite_drift_budget_keeps_the_most_sensitive_convolutions_float(quantized, tmp_path, monkeypatch):
    """Full-int8 TFLite under a budget that keeping six convolutions float reaches: the search meets it with at most
    those six float (searching among them only, to keep the test short), and records its trials."""
    from egeunet.accuracy import compare
    from egeunet.export import tflite_export

    _, recipe, built = quantized
    calib, _ = synthetic_sets(SIZE, 4, 1)
    fp32 = tmp_path / "fp32.tflite"
    fp32.write_bytes(built["fp32"])
    spec = ExportSpec(size=SIZE, calibration=calib)
    static = tflite_export.StaticQuantizer(str(fp32), recipe, spec)
    six = tflite_export.conv_layers(fp32.read_bytes())[:6]
    monkeypatch.setattr(tflite_export, "conv_layers", lambda buf: six)
    reference = static.probabilities(fp32.read_bytes())
    full = compare(static.probabilities(static.build()), reference).agreement
    budget = compare(static.probabilities(static.build(float_layers=six)), reference).agreement
    assert full < budget
    static.spec = ExportSpec(size=SIZE, calibration=calib, int8_drift_budget=budget)
    buf, record = static.within_budget()
    assert record["met"] and record["agreement"] >= budget and 1 <= len(record["kept_float"]) <= 6
    assert record["trials"][0]["agreement"] == pytest.approx(full, abs=1e-6) and record["images"] == 4
    assert compare(static.probabilities(buf), reference).agreement == pytest.approx(record["agreement"])
    assert all("/" in layer and "." not in layer for layer in record["kept_float"])  # short module scopes


def test_conversion_caches_are_keyed_by_content_not_identity():
    """A deploy form changed in place (as fine-tuning does) must not get a stale conversion back."""
    from egeunet.export.base import deploy_key

    model = EGEUNet().eval()
    deploy = deploy_form(model, SIZE)
    before = deploy_key(deploy)
    assert deploy_key(deploy_form(copy.deepcopy(model), SIZE)) == before  # same weights, another object: same key
    with torch.no_grad():
        deploy.net.final.bias.add_(1.0)
    assert deploy_key(deploy) != before
    assert get_format("tflite") is not get_format("tflite")  # one exporter (and cache) per export run
