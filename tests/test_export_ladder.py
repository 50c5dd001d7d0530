"""The int8 ladder: a recipe that misses its gate is tried in its next form (full int8 -> keep-float -> dynamic range),
and the export keeps the smallest form that passes, named in the manifest; an exact ``int8_recipe`` fails instead.

Real exports of test_export's 60-step model at 64 x 64 (ONNX only for the walks: its search is the fast one).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from egeunet import load_model
from egeunet.accuracy import Gate
from egeunet.errors import EGEUNetError
from egeunet.export import ExportFailed, ExportSpec, export_all, get_format
from egeunet.export.api import reference_probs, summary_table
from egeunet.export.data import synthetic_sets
from egeunet.export.recipes import INT8_LADDER, ladder
from test_export import N_CALIB, N_HELD, SIZE, TEST_GATES

pytestmark = [pytest.mark.numeric, pytest.mark.plumbing]  # the ladder's walk is logic on measured numbers (its tight gate is derived from them): once is enough


@pytest.fixture(scope="module")
def checkpoint(light_checkpoint) -> Path:
    return light_checkpoint(SIZE)  # trained once per session (conftest.py)


def _export(checkpoint: Path, out: Path, int8: Gate, **options) -> dict:
    """ONNX int8 only, with ``int8`` as the int8 gate."""
    return export_all(checkpoint, out, spec=ExportSpec(gates={**TEST_GATES, "int8": int8}, **options), formats="onnx",
                      precisions="int8", n_calib=N_CALIB, n_held=N_HELD, golden=False, progress=False)


@pytest.fixture(scope="module")
def passing(checkpoint, tmp_path_factory) -> dict:
    """The ladder under the test gates, which full int8 meets."""
    return _export(checkpoint, tmp_path_factory.mktemp("passing"), TEST_GATES["int8"])


@pytest.fixture(scope="module")
def tight_gate(passing) -> Gate:
    """An agreement limit half-way from what full int8 reached on the held-out images to 1: full int8 cannot meet it."""
    full = passing["artifacts"][0]["validation"]["agreement"]
    return Gate(min_agreement=full + (1 - full) / 2, max_iou_drop_points=TEST_GATES["int8"].max_iou_drop_points)


def test_a_passing_full_int8_takes_no_other_form(passing):
    record = passing["artifacts"][0]
    form = record["int8_form"]
    assert form["rung"] == "full" and [row["rung"] for row in form["tried"]] == ["full"]
    assert form["ladder"] == [r.name for r in INT8_LADDER] and form["tried"][0]["bytes"] == record["bytes"]
    assert record["recipe"]["activations"] == "int8" and record["quantization"]["int8_ops"] == ["Conv"]
    assert "int8 form of" not in summary_table(passing)  # nothing to explain


def test_a_missed_gate_walks_the_ladder_and_keeps_a_later_form(checkpoint, tight_gate, tmp_path):
    from egeunet.runtime.runners import open_runner

    manifest = _export(checkpoint, tmp_path, tight_gate)
    record = manifest["artifacts"][0]
    form = record["int8_form"]
    tried = form["tried"]
    assert tried[0]["rung"] == "full" and not tried[0]["passed"] and tried[0]["agreement"] < tight_gate.min_agreement
    assert form["rung"] != "full" and [row["rung"] for row in tried if row.get("kept")] == [form["rung"]]
    kept = next(row for row in tried if row.get("kept"))
    assert kept["bytes"] == record["bytes"] == (tmp_path / "egeunet_int8.onnx").stat().st_size
    assert kept["bytes"] == min(row["bytes"] for row in tried if row["passed"])  # the smallest form that passed
    assert all("error" in row for row in tried if not row["passed"])
    if form["rung"] == "keep-float":  # the search kept that many convolutions float, under a budget above the gate
        assert kept["kept_float"] == len(record["int8_drift_budget"]["kept_float"]) >= 1
        assert kept["drift_budget"] > tight_gate.min_agreement and record["quantization"]["int8_ops"] == ["Conv"]
    else:
        assert form["rung"] == "dynamic" and record["recipe"]["activations"] == "float32"
        assert record["quantization"] == {"int8_weight_ops": ["Conv"]}
    # the kept file is what the record says: it meets the tight gate on the held-out images
    _, held = synthetic_sets(SIZE, N_CALIB, N_HELD)
    runner = open_runner(tmp_path / "egeunet_int8.onnx", threads=1)
    probs = np.stack([runner.predict_image(image) for image in held.images])
    reference = reference_probs(load_model(manifest["model"]["path"]), held.images)
    assert float(np.mean((probs >= 0.5) == (reference >= 0.5))) >= tight_gate.min_agreement
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["artifacts"][0]["int8_form"]["rung"] == form["rung"]
    assert f"int8 form of egeunet_int8.onnx: took {form['rung']}" in summary_table(manifest)


def test_an_exact_int8_recipe_fails_instead_of_walking(checkpoint, tight_gate, tmp_path):
    with pytest.raises(ExportFailed) as info:
        _export(checkpoint, tmp_path, tight_gate, int8_recipe="full")
    failed = info.value.manifest["failed"][0]
    assert failed["int8_form"]["ladder"] == ["full"] and [r["rung"] for r in failed["int8_form"]["tried"]] == ["full"]
    assert failed["int8_form"]["rung"] is None and failed["error"].startswith("gate failed")
    assert not (tmp_path / "egeunet_int8.onnx").exists() and info.value.manifest["artifacts"] == []


def test_ladders_are_data_per_recipe():
    spec = ExportSpec(size=SIZE)
    onnx_int8, = get_format("onnx").recipes("int8", spec)
    dynamic, full, integer = get_format("tflite").recipes("int8", spec)
    int8_io = get_format("tflite").recipes("int8", spec, int8_io=True)[1]
    def names(rungs) -> list[str]:
        return [r.name for r in rungs]

    assert names(ladder(onnx_int8)) == names(ladder(full)) == ["full", *["keep-float"] * 3, "dynamic"]
    assert names(ladder(int8_io)) == ["full", "keep-float", "keep-float", "keep-float"]  # dynamic has float I/O
    assert names(ladder(integer)) == ["full", "moving-average"] and names(ladder(dynamic)) == ["as-built"]
    assert names(ladder(onnx_int8, "keep-float")) == ["keep-float"] * 3
    assert names(ladder(integer, "dynamic")) == ["full"]  # the integer-only ladder has no dynamic form
    budgets = [rung.form(full, spec)[1].int8_drift_budget for rung in ladder(full)]
    assert budgets == [None, 0.995, 0.9975, 0.99875, None]  # each step halves the disagreement the 0.99 gate allows
    strict = spec.with_(int8_drift_budget=0.998)
    assert [rung.form(full, strict)[1].int8_drift_budget for rung in ladder(full)][1:4] == [0.998, 0.998, 0.99875]
    assert all(rung.form(integer, strict)[1].int8_drift_budget is None for rung in ladder(integer))  # no float layer
    moving = ladder(integer)[1].form(integer, spec)[0]
    assert moving.integer_only and moving.ranges == "moving-average" and integer.ranges == "running-min-max"
    dynamic_form = ladder(full)[-1].form(full, spec)[0]
    assert (dynamic_form.name, dynamic_form.static, dynamic_form.weights) == ("int8", False, "int8")
    with pytest.raises(EGEUNetError, match="--int8-recipe"):
        ExportSpec(int8_recipe="fastest")


def test_dynamic_with_int8_io_is_refused_in_one_line(checkpoint, tmp_path):
    with pytest.raises(EGEUNetError, match="cannot be combined with --int8-io"):
        export_all(checkpoint, tmp_path, spec=ExportSpec(int8_recipe="dynamic"), formats="tflite", precisions="int8",
                   int8_io=True, progress=False)


def test_cli_names_the_option_and_its_default(capsys):
    from egeunet.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--int8-recipe {ladder,full,keep-float,dynamic}" in text and "(default ladder)" in text


def test_drift_budget_search_reads_nhwc_outputs(checkpoint, tmp_path):
    """The search compares N x S x S probabilities whatever the layout (an NHWC output once made it crash)."""
    manifest = _export(checkpoint, tmp_path, TEST_GATES["int8"], nhwc=True, int8_drift_budget=0.0)
    record = manifest["artifacts"][0]
    assert record["layout"] == "NHWC" and record["int8_drift_budget"]["met"]
    assert record["int8_drift_budget"]["kept_float"] == []
