"""Issue 23's smaller items: evaluate takes an artifact's split from its export, info on an ONNX file with external
data, the Table 2 label of `info --variant`."""
from __future__ import annotations

import json

import onnx
import pytest
import torch

from egeunet import EGEUNet, save_checkpoint
from egeunet.cli import main
from egeunet.commands.evaluate import recorded_split_of
from egeunet.model.config import VARIANTS, paper_params, variant_config


def test_evaluate_takes_an_artifacts_split_from_its_export(tmp_path):
    data, split = tmp_path / "data", tmp_path / "run" / "split.json"
    data.mkdir()
    split.parent.mkdir()
    split.write_text(json.dumps({"train": ["a"], "val": ["b"], "test": ["c"]}))
    ckpt = tmp_path / "run" / "best.pt"
    save_checkpoint(ckpt, EGEUNet(), training={"data": str(data.resolve()), "split_file": str(split)})
    export = tmp_path / "export"
    export.mkdir()
    (export / "manifest.json").write_text(json.dumps({"model": {"path": str(ckpt)},
                                                      "artifacts": [{"file": "m.onnx", "format": "onnx"}]}))
    assert recorded_split_of(str(ckpt), str(data)) == (str(split), "recorded in the checkpoint")
    found, by = recorded_split_of(str(export / "m.onnx"), str(data))
    assert found == str(split) and by == f"recorded by its export: manifest.json -> {ckpt}"
    assert recorded_split_of(str(export / "other.onnx"), str(data)) == (None, "")  # not listed in the manifest
    assert recorded_split_of(str(export / "m.onnx"), str(tmp_path)) == (None, "")  # other data: no split applies
    (export / "manifest.json").write_text("{not json")
    assert recorded_split_of(str(export / "m.onnx"), str(data)) == (None, "")


def test_info_on_onnx_with_external_data(tmp_path, capsys):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 1)).eval()
    inline = tmp_path / "inline.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 32, 32),), str(inline),
                      opset_version=18, verbose=False, external_data=False)
    external = tmp_path / "ext" / "m.onnx"
    external.parent.mkdir()
    onnx.save_model(onnx.load(str(inline)), str(external), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.onnx.data", size_threshold=0)
    weights = 4 * sum(p.numel() for p in net.parameters())
    assert main(["info", str(external)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "bytes:" in x][0]
    assert f"{weights:,} more in external data files" in line
    size = external.stat().st_size
    assert f"structure {size:,}" in line  # the whole small file is structure, never a negative number
    assert main(["info", str(inline)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "bytes:" in x][0]
    assert f"data {weights:,} (float " in line and "external" not in line


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_info_quotes_the_papers_count_of_the_variant_shown(variant, capsys):
    assert main(["info", "--variant", variant]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert f"(the paper: {paper_params(variant_config(variant))})" in line
    assert variant != "baseline" or "0.107M" in line


def test_no_papers_count_for_a_model_outside_table_2():
    assert paper_params(variant_config("egeunet", channels=(4, 8, 12, 16, 24, 32))) is None
