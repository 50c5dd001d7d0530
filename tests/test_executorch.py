"""ExecuTorch .pte: every op of the fp32 and int8 programs inside XNNPACK, export through the gates, the contract."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("executorch.runtime")

from conftest import perturb_  # noqa: E402

from egeunet import EGEUNet, load_model  # noqa: E402
from egeunet.errors import EGEUNetError  # noqa: E402
from egeunet.export import ExportSpec  # noqa: E402
from egeunet.export.base import contract  # noqa: E402
from egeunet.model.deploy import ConvStatsGroupNorm, deploy_form, for_executorch  # noqa: E402
from egeunet.export.executorch_export import CONFIG, ExecuTorchExporter, delegation, describe_pte  # noqa: E402
from egeunet.runtime import formats  # noqa: E402
from egeunet.runtime.contract import CONTRACT_KEY, CONTRACT_VERSION  # noqa: E402
from egeunet.runtime.runners import open_runner, runtime_for  # noqa: E402

SIZE = 64  # executorch_export's (conftest.py): the lightly trained model exported to fp32 and full-int8 .pte


def test_delegation_counts_the_ops_left_outside_xnnpack():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    class ChannelMean(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) - x.mean(1, keepdim=True)  # XNNPACK has no MEAN over channels

    program = torch.export.export(ChannelMean(), (torch.randn(1, 4, 8, 8),))
    counts = delegation(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]))
    assert counts["outside"] == {"aten.mean.dim": 1} and counts["sections"] >= 1 and counts["delegated_ops"] >= 2


def test_the_executorch_form_computes_the_deploy_form():
    torch.manual_seed(0)
    model = perturb_(EGEUNet()).double()  # float64: the same function, not float32's rounding
    with torch.no_grad():  # negative GroupNorm weights: the pooled stages fold their signs into the convolution
        for norm in (m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)):
            norm.weight[::3].neg_()
    deploy = deploy_form(model, SIZE)
    x = deploy.example_input().double()
    form = for_executorch(deploy)
    assert sum(isinstance(m, ConvStatsGroupNorm) for m in form.modules()) == 10  # every GroupNorm from 1x1 statistics
    with torch.no_grad():
        assert (form(x) - deploy(x)).abs().max() < 1e-10


def test_both_programs_pass_their_gates_with_every_op_in_xnnpack(executorch_export):
    out, manifest = executorch_export
    records = {r["variant"]: r for r in manifest["artifacts"]}
    assert set(records) == {"fp32", "int8"}, manifest["failed"]
    for variant, record in records.items():
        assert record["validation"]["passed"] and record["file"] == f"egeunet_{variant}.pte"
        info = describe_pte(out / record["file"])
        assert info["delegates"] == {"XnnpackBackend": 1} and info["outside_delegates"] == {}  # read from the file
        assert info["inputs"] == [{"name": "image", "dtype": "float32", "shape": [1, 3, SIZE, SIZE]}]
        assert bool(info["quantization"]) == (variant == "int8")
    assert records["int8"]["bytes"] < records["fp32"]["bytes"]
    # the shared export is gated by test_export's looser int8 gate (its verdicts must hold on other kernels too): this
    # 60-step model's int8 agreement sits at the default gate's 99% (measured 0.989-0.991 on 8 and 48 images, with
    # and without the ExecuTorch form's 1x1 statistics), so the default gate would decide on rounding here; the demo
    # model's .pte meets it (README)
    assert records["int8"]["int8_form"]["rung"] == "full"


def test_the_int8_ladder_tries_only_the_full_form():
    """The exporter builds full int8 only, so the export's ladder (full, keep-float, dynamic) holds that one form: a
    failed gate reports its numbers, not three keep-float budgets and a dynamic form the exporter refuses."""
    from egeunet.export.onnx_export import OnnxExporter
    from egeunet.export.recipes import ladder

    spec = ExportSpec(size=SIZE)
    assert [r.name for r in ladder(ExecuTorchExporter().recipes("int8", spec)[0])] == ["full"]
    assert [r.name for r in ladder(OnnxExporter().recipes("int8", spec)[0])] == ["full", *["keep-float"] * 3, "dynamic"]


def test_the_runner_matches_pytorch(executorch_export):
    out, manifest = executorch_export
    path = out / "egeunet_fp32.pte"
    runner = open_runner(path, threads=1)
    assert runtime_for(path) == "executorch" and runner.input_size == SIZE
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        reference = load_model(manifest["model"]["path"])(torch.from_numpy(x)).numpy()
    assert np.abs(runner.predict(x) - reference).max() < 1e-4


def test_the_contract_round_trips_and_a_newer_one_is_refused(executorch_export, tmp_path):
    out, _ = executorch_export
    exporter = ExecuTorchExporter()
    for variant in ("fp32", "int8"):
        recipe = next(r for p in ("fp32", "int8") for r in exporter.recipes(p, ExportSpec(size=SIZE))
                      if r.name == variant)
        written = contract(ExportSpec(size=SIZE), CONFIG, recipe)
        assert formats.read_contract(out / f"egeunet_{variant}.pte") == written
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    newer = tmp_path / "newer.pte"
    program = torch.export.export(torch.nn.Conv2d(3, 1, 1).eval(), (torch.randn(1, 3, SIZE, SIZE),))
    text = json.dumps({**written, "version": CONTRACT_VERSION + 1})
    newer.write_bytes(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                                  constant_methods={CONTRACT_KEY: text}).to_executorch().buffer)
    for attempt in (lambda: formats.read_contract(newer), lambda: open_runner(newer)):
        with pytest.raises(EGEUNetError, match=f"contract is version {CONTRACT_VERSION + 1}, newer than"):
            attempt()
