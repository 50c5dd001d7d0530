"""Adding a format is one descriptor plus its runner and exporter (``egeunet.runtime.formats``): a ``torch.export``
``.pt2`` format defined here, with nothing else edited, reaches every table that lists formats; the contract is
written and read in one module and refuses, in one line, a version newer than the reader knows."""
from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from egeunet import EGEUNet, load_model, save_checkpoint
from egeunet.benchmark.artifacts import collect_targets
from egeunet.benchmark.sizes import artifact_sizes
from egeunet.cli import build_parser, main
from egeunet.errors import EGEUNetError
from egeunet.export import ExportSpec, export_all, get_format, list_formats
from egeunet.export import base as export_base
from egeunet.export.base import Exporter, contract
from egeunet.export.recipes import Recipe, float_recipe
from egeunet.export.spec import FormatConfig
from egeunet.runtime import formats
from egeunet.runtime.byte_accounting import accounting, record
from egeunet.runtime.contract import CONTRACT_KEY, CONTRACT_VERSION, ArtifactIO, contract_json, parse_contract
from egeunet.runtime.runners import RUNTIMES, Runner, list_runtimes, open_runner, runtime_for, runtimes_for

SIZE = 32
RUNTIME = "torch-export"
pytestmark = pytest.mark.filterwarnings("ignore:the fp32 model reaches only")  # an untrained model on the sample


def _load(path: Path) -> tuple[torch.export.ExportedProgram, str]:
    """The program in a .pt2 file and the contract JSON saved beside it ("" when none)."""
    extra = {CONTRACT_KEY: ""}
    return torch.export.load(str(path), extra_files=extra), extra[CONTRACT_KEY]


def _contract(path: Path) -> str | None:
    """The contract: the archive's extra file of that name, read without loading the program."""
    with zipfile.ZipFile(path) as archive:
        name = next((n for n in archive.namelist() if n.endswith(f"/extra/{CONTRACT_KEY}")), None)
        return archive.read(name).decode() if name else None


def _accounting(buf: bytes) -> dict:
    """Weights: the archive's data/weights entries; structure: the rest; ops: the graph's call_function nodes."""
    with zipfile.ZipFile(io.BytesIO(buf)) as archive:
        weights = sum(i.file_size for i in archive.infolist() if "/data/weights/" in i.filename)
    program = torch.export.load(io.BytesIO(buf))
    ops = Counter(str(n.target) for n in program.graph.nodes if n.op == "call_function")
    return record(len(buf), Counter({"weights": weights}), ops)


class ExportedProgramRunner(Runner):
    """Runs a .pt2 file's program (batch 1 at a time: the program fixes it)."""

    runtime = RUNTIME

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        super().__init__(path, threads, device)
        program, text = _load(path)
        self.module = program.module()
        self.io = ArtifactIO.from_contract(text or None)

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([self.module(torch.from_numpy(np.ascontiguousarray(x[i:i + 1]))).numpy()
                                   for i in range(len(x))])


class ExportedProgramExporter(Exporter):
    """fp32 only: the deploy form captured by ``torch.export``, saved with the contract as an extra file."""

    config = FormatConfig(name="pt2", precisions=("fp32",))

    def recipes(self, precision: str, spec: ExportSpec, int8_io: bool = False) -> list[Recipe]:
        return [float_recipe("fp32", "torch.export")]

    def export(self, deploy, spec: ExportSpec, out_path: Path, recipe: Recipe) -> Path:
        program = torch.export.export(deploy, (deploy.example_input(),))
        torch.export.save(program, str(out_path), extra_files={CONTRACT_KEY: contract_json(contract(spec, self.config,
                                                                                                     recipe))})
        return Path(out_path)

    def describe(self, path: Path) -> dict:
        text = _contract(path)
        counted = _accounting(Path(path).read_bytes())
        return {"inputs": [{"name": "image", "shape": [1, 3, SIZE, SIZE], "dtype": "float32"}],
                "outputs": [{"name": "prob", "shape": [1, 1, SIZE, SIZE], "dtype": "float32"}],
                "ops": counted["ops"], "op_counts": counted["op_counts"], "quantization": None,
                "contract": json.loads(text) if text else None}


DESCRIPTOR = formats.FileFormat("pt2", (".pt2",), {RUNTIME: __name__}, __name__, _contract, _accounting)


@pytest.fixture(scope="module")
def pt2_format():
    """The .pt2 format registered for this module's tests, and removed after them."""
    formats.add_format(DESCRIPTOR)
    RUNTIMES[RUNTIME] = ExportedProgramRunner
    export_base.register(ExportedProgramExporter)
    try:
        yield DESCRIPTOR
    finally:
        del formats.FORMATS["pt2"], RUNTIMES[RUNTIME], export_base.FORMATS["pt2"]


@pytest.fixture(scope="module")
def exported(pt2_format, tmp_path_factory) -> tuple[Path, dict]:
    """A fresh model exported to .pt2 through ``export_all`` (validated against PyTorch like every format)."""
    folder = tmp_path_factory.mktemp("pt2")
    torch.manual_seed(0)
    save_checkpoint(folder / "model.pt", EGEUNet(), SIZE)
    manifest = export_all(folder / "model.pt", folder / "out", formats="pt2", precisions="fp32", n_calib=1, n_held=2,
                          golden=False, progress=False)
    return folder / "out" / manifest["artifacts"][0]["file"], manifest


def test_the_registries_list_a_format_added_by_one_descriptor(pt2_format):
    assert "pt2" in formats.list_formats() and "pt2" in list_formats()
    assert RUNTIME in list_runtimes() and runtimes_for("m.PT2") == [RUNTIME] and runtime_for("m.pt2") == RUNTIME
    assert runtimes_for("m.tflite") == ["litert", "litert-arm64"]  # the first is the default
    assert ".pt2" in formats.all_suffixes() and get_format("pt2").config.suffix == ".pt2"
    assert get_format("pt2").config.runtime == RUNTIME
    args = build_parser().parse_args(["export", "model.pt", "--out", "out"])
    default = args.formats.split(",")
    assert default == formats.export_formats() == list_formats() and "pt2" in default  # every format, a new one too
    with pytest.raises(EGEUNetError, match="'.pt2' is already format 'pt2'"):
        formats.add_format(formats.FileFormat("other", (".pt2",), {"other-runtime": __name__}))


def test_the_added_format_exports_runs_and_accounts_for_its_bytes(exported):
    path, manifest = exported
    assert path.name == "egeunet_fp32.pt2" and manifest["artifacts"][0]["validation"]["passed"]
    runner = open_runner(path)
    assert isinstance(runner, ExportedProgramRunner) and runner.input_size == SIZE
    x = np.random.default_rng(0).uniform(0, 255, (3, 3, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        reference = load_model(path.parent.parent / "model.pt")(torch.from_numpy(x)).numpy()
    assert np.abs(runner.predict(x) - reference).max() < 1e-5

    counted = accounting(path)
    with zipfile.ZipFile(path) as archive:
        weights = sum(i.file_size for i in archive.infolist() if "/data/weights/" in i.filename)
    assert counted["constant_data_bytes"] == weights > 0 and counted["ops"] > 50
    sizes = artifact_sizes(path)
    assert sizes["bytes"] == path.stat().st_size and sizes["weight_bytes"] == weights
    assert sizes["graph_bytes"] == sizes["bytes"] - weights
    targets, _ = collect_targets(path)
    assert [t.runtime for t in targets] == [RUNTIME] and targets[0].problem is None


def test_egeunet_info_describes_the_added_format(exported, capsys):
    path, _ = exported
    assert main(["info", str(path), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["contract"]["input_size"] == SIZE and described["bytes"] == path.stat().st_size
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"{SIZE}px" in text and f"weights {accounting(path)['constant_data_bytes']:,}" in text


def test_the_contract_round_trips_and_a_newer_one_is_refused(exported, tmp_path):
    path, _ = exported
    written = contract(ExportSpec(size=SIZE), ExportedProgramExporter.config, float_recipe("fp32", "torch.export"))
    assert formats.read_contract(path) == written and written["version"] == CONTRACT_VERSION
    assert parse_contract(json.dumps({**written, "version": 1})) == {**written, "version": 1}  # today's files
    newer = tmp_path / "newer.pt2"
    program, _ = _load(path)
    torch.export.save(program, str(newer), extra_files={CONTRACT_KEY: contract_json({**written,
                                                                                      "version": CONTRACT_VERSION + 1})})
    for attempt in (lambda: formats.read_contract(newer), lambda: open_runner(newer)):
        with pytest.raises(EGEUNetError, match=f"contract is version {CONTRACT_VERSION + 1}, newer than") as info:
            attempt()
        assert "\n" not in str(info.value)


def test_every_contract_reader_goes_through_the_version_check():
    """A contract without a version (none was ever written so) reads as version 1; a non-integer one is refused."""
    assert ArtifactIO.from_contract({"input_size": 64, "layout": "NHWC"}).layout == "NHWC"
    with pytest.raises(EGEUNetError, match="version '2'"):
        ArtifactIO.from_contract({"version": "2", "input_size": 64})
