"""The benchmark harness on real artifacts: every runtime, the gate, marked rows, the report files."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from egeunet import EGEUNet, save_checkpoint
from egeunet.accuracy import Gate, compare
from egeunet.benchmark.latency import latency_stats, time_calls
from egeunet.benchmark.report import CSV_COLUMNS
from egeunet.runtime.runners import list_runtimes
from egeunet.benchmark.sizes import artifact_sizes
from egeunet.cli import main
from egeunet.errors import EGEUNetError
from egeunet.runtime.artifacts import file_digest


def sha256_file(path: Path) -> str:
    return file_digest(path)[1]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _onnx(model: torch.nn.Module, path: Path, size: int = 256) -> Path:
    """Plain fp32 ONNX (no contract metadata: runners read it as NCHW float32 at 256)."""
    torch.onnx.export(model, (torch.rand(1, 3, size, size) * 255,), str(path),
                      opset_version=18, verbose=False, external_data=False,
                      input_names=["image"], output_names=["prob"],
                      dynamic_axes={"image": {0: "batch"}, "prob": {0: "batch"}})
    return path


def _break_output(src: Path, dst: Path) -> Path:
    """A deliberately broken artifact: the final sigmoid's input pushed down by 50, so every pixel says background."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    sigmoid = next(n for n in model.graph.node if n.op_type == "Sigmoid")
    model.graph.initializer.append(numpy_helper.from_array(np.full(1, -50.0, np.float32), "broken_bias"))
    model.graph.node.insert(list(model.graph.node).index(sigmoid),
                            helper.make_node("Add", [sigmoid.input[0], "broken_bias"], ["broken_logits"]))
    sigmoid.input[0] = "broken_logits"
    onnx.save(model, str(dst))
    return dst


def _tiny_tflite(path: Path) -> Path:
    """A real LiteRT file with the canonical I/O (1x3x256x256 -> 1x1x256x256), small enough to convert fast."""
    import litert_torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1), torch.nn.Sigmoid()).eval()
    litert_torch.convert(net, (torch.rand(1, 3, 256, 256) * 255,)).export(str(path))
    return path


def _fake_mlpackage(path: Path) -> Path:
    """An .mlpackage folder layout (weights file plus spec); on Linux its runner must say "needs macOS"."""
    (path / "Data" / "com.apple.CoreML" / "weights").mkdir(parents=True)
    (path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").write_bytes(b"\0" * 1000)
    (path / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(b"spec" * 100)
    (path / "Manifest.json").write_text("{}")
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> SimpleNamespace:
    """A checkpoint, an export folder with a manifest (good, broken, tampered, LiteRT, CoreML, unknown), data."""
    from egeunet.data import write_sample_dataset

    root = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    model = EGEUNet().eval()
    ckpt = root / "model.pt"
    save_checkpoint(ckpt, model)
    exp = root / "export"
    exp.mkdir()
    _onnx(model, exp / "model.onnx")
    _break_output(exp / "model.onnx", exp / "broken.onnx")
    shutil.copy(exp / "model.onnx", exp / "tampered.onnx")
    _tiny_tflite(exp / "tiny.tflite")
    _fake_mlpackage(exp / "model.mlpackage")
    (exp / "model.engine").write_bytes(b"not a model")
    (exp / "corrupt.onnx").write_bytes((exp / "model.onnx").read_bytes()[:5000])  # truncated download
    entries = [("model.onnx", "onnx", "fp32"), ("broken.onnx", "onnx", "fp32"), ("tampered.onnx", "onnx", "fp32"),
               ("corrupt.onnx", "onnx", "fp32"), ("tiny.tflite", "tflite", "fp32"), ("model.mlpackage", "coreml", "fp16"),
               ("model.engine", "tensorrt", "fp16")]
    artifacts = [{"file": f, "format": fmt, "precision": p, "sha256": sha256_file(exp / f)} for f, fmt, p in entries]
    artifacts[2]["sha256"] = "0" * 64
    failed = [{"file": "egeunet_int8.tflite", "format": "tflite", "precision": "int8", "kept": False,
               "error": "gate failed: mask agreement >= 0.99"}]
    (exp / "manifest.json").write_text(json.dumps({"model": {"path": str(ckpt), "sha256": sha256_file(ckpt)},
                                                   "artifacts": artifacts, "failed": failed}))
    data = write_sample_dataset(root / "data", 4, seed=3)
    nomask = root / "nomask"
    nomask.mkdir()
    for jpg in sorted((data / "ISIC2018_Task1-2_Training_Input").glob("*.jpg"))[:2]:
        shutil.copy(jpg, nomask / jpg.name)
    return SimpleNamespace(root=root, ckpt=ckpt, exp=exp, data=data, nomask=nomask)


@pytest.fixture(scope="module")
def sweep(bench) -> SimpleNamespace:
    """One CLI run over the export folder with a gate: exit code and the files it wrote."""
    out = bench.root / "report"
    rc = main(["benchmark", str(bench.exp), "--data", str(bench.data), "--split", "all", "--n-held", "2",
               "--runs", "3", "--warmup", "1", "--threads", "1", "--iou-drop", "0.5", "--agreement", "0.99",
               "--no-sensitivity", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    return SimpleNamespace(rc=rc, out=out, results=results, rows={r["name"]: r for r in results["rows"]})


def test_latency_stats_on_synthetic_timings():
    stats = latency_stats([0.001 * v for v in range(1, 101)])  # 1..100 ms
    assert stats["runs"] == 100
    assert stats["min_ms"] == pytest.approx(1.0)
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p90_ms"] == pytest.approx(90.1)
    assert stats["mean_ms"] == pytest.approx(50.5)
    with pytest.raises(EGEUNetError):
        latency_stats([])


def test_time_calls_warms_up_then_times_each_run():
    calls = []
    times = time_calls(lambda: calls.append(1), runs=5, warmup=3)
    assert len(calls) == 8 and len(times) == 5 and all(t >= 0 for t in times)


def test_gate_units_points_and_fraction():
    """One gate type: agreement as a fraction, IoU drop in points, and a limit it cannot compute fails."""
    rng = np.random.default_rng(0)
    reference = rng.random((6, 32, 32))
    truth = reference >= 0.5
    near = reference.copy()
    near[:, 0, :2] = 1 - near[:, 0, :2]  # 2 of 1024 pixels per image flip
    gate = Gate(min_agreement=0.99, max_iou_drop_points=0.5)
    verdict = gate.check(compare(near, reference, truth))
    assert verdict.passed and verdict.reasons == []
    assert {c["metric"] for c in verdict.criteria} == {"agreement", "iou_drop_points"}
    assert all(c["images"] == 6 and len(c["interval"]) == 2 for c in verdict.criteria)
    far = reference.copy()
    far[:, :2] = 1 - far[:, :2]  # 64 of 1024 pixels per image flip: about 6% disagreement
    verdict = gate.check(compare(far, reference, truth))
    assert not verdict.passed and any("agreement" in r for r in verdict.reasons)
    drop = compare(far, reference, truth).iou_drop_points  # random masks are half foreground: about 12 points
    assert Gate(max_iou_drop_points=drop + 1).check(compare(far, reference, truth)).passed
    assert not Gate(max_iou_drop_points=drop - 1).check(compare(far, reference, truth)).passed
    no_masks = gate.check(compare(near, reference, None))
    assert not no_masks.passed and "no ground-truth masks" in no_masks.reasons[0]
    no_reference = gate.check(compare(near, None, truth), missing="the reference checkpoint x.pt is missing")
    assert not no_reference.passed and "x.pt is missing" in no_reference.reasons[0]
    assert not Gate().active and Gate(min_agreement=0.9).active


def test_every_default_runtime_gets_a_row(sweep):
    """Every runtime but the emulated ones (run only when asked: tests/test_arm64.py, test_executorch_runtime.py) is
    some file type's default, and the sweep's file types (.pte rows: test_executorch_runtime.py) each get a row."""
    from egeunet.runtime.formats import all_suffixes
    from egeunet.runtime.runners import runtimes_for

    assert {runtimes_for(f"x{s}")[0] for s in all_suffixes()} == set(list_runtimes()) - {"litert-arm64",
                                                                                       "executorch-arm64"}
    swept = {runtimes_for(f"x{suffix}")[0] for suffix in (".pt", ".onnx", ".tflite", ".mlpackage")}
    assert swept <= {r["runtime"] for r in sweep.results["rows"]}


def test_runners_measure_accuracy_drift_and_latency(sweep):
    ref, onnx_row, tflite = sweep.rows["model.pt (reference)"], sweep.rows["model.onnx"], sweep.rows["tiny.tflite"]
    for row in (ref, onnx_row, tflite):
        assert row["status"] == "ok", row
        timing = row["by_threads"][0]
        assert timing["threads"] == 1 and timing["model"]["runs"] == 3
        assert 0 < timing["model"]["min_ms"] <= timing["model"]["p50_ms"] <= timing["model"]["p90_ms"]
        assert timing["end_to_end"]["p50_ms"] > 0 and timing["load_ms"] > 0
        assert row["peak_rss_mb"] >= row["rss_base_mb"] > 0
        assert 0 <= row["miou"] <= 1
    assert tflite["runtime"] == "litert" and onnx_row["runtime"] == "onnxruntime"
    assert onnx_row["agreement"] > 0.999 and onnx_row["max_abs_dprob"] < 1e-3
    assert abs(onnx_row["miou_drop_points"]) < 0.05
    assert onnx_row["gate"] == "pass"


def test_broken_artifact_fails_the_gate_with_nonzero_exit(sweep):
    broken = sweep.rows["broken.onnx"]
    assert broken["status"] == "ok" and broken["gate"] == "fail"
    assert broken["agreement"] < 0.99
    assert sweep.rc == 1


def test_bad_artifacts_are_marked_rows(sweep):
    assert sweep.rows["tampered.onnx"]["status"] == "failed"
    assert "sha256 mismatch" in sweep.rows["tampered.onnx"]["note"]
    coreml = sweep.rows["model.mlpackage"]  # a runtime this platform lacks, not named in --runtimes: skipped
    assert coreml["status"] == "skipped" and "needs macOS" in coreml["note"] and coreml["gate"] == ""
    assert coreml["weight_bytes"] == 1000 and coreml["bytes"] > 1000  # sizes still measured
    assert "unknown model format '.engine'" in sweep.rows["model.engine"]["note"]
    corrupt = sweep.rows["corrupt.onnx"]
    assert corrupt["status"] == "failed" and "cannot load" in corrupt["note"] and corrupt["gate"] == "fail"
    assert sweep.rows["egeunet_int8.tflite"]["note"].startswith("not exported: gate failed")


def test_report_files_exist_and_parse(sweep):
    with open(sweep.out / "results.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert {r["name"] for r in rows} == set(sweep.rows)
    assert sweep.results["environment"]["cores_logical"] >= 1
    assert sweep.results["environment"]["libraries"]["torch"]
    pngs = sorted(p.name for p in sweep.out.glob("*.png"))
    assert "latency_vs_miou.png" in pngs and "sizes.png" in pngs and "worst_broken.onnx.png" in pngs
    for png in sweep.out.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC
    report = (sweep.out / "report.md").read_text()
    assert "![latency vs mIoU](latency_vs_miou.png)" in report
    assert "Where the bytes go" in report and "B/op" in report
    assert "needs macOS" in report and "sha256 mismatch" in report
    assert "percentage points" in report or "points" in report
    assert "## Latency spread" in report
    for row in sweep.results["rows"]:
        for timing in row.get("by_threads") or []:
            model = timing["model"]
            assert model["p10_ms"] <= model["p25_ms"] <= model["p50_ms"] <= model["p75_ms"] <= model["p90_ms"]


def test_agreement_matrix_on_real_masks(bench):
    """PyTorch, its ONNX export and the broken ONNX on two real images: each pair's cell is the pooled agreement
    ``compare`` gives for that pair, the matrix is symmetric, and masks of another shape are refused."""
    from egeunet.benchmark.agreement import agreement_matrix, percent
    from egeunet.benchmark.evalset import load_eval_set
    from egeunet.metrics import binarize
    from egeunet.runtime.runners import open_runner

    inputs = load_eval_set(bench.data, "all", 256, limit=2).inputs
    probs = {name: open_runner(path, threads=1).probabilities(inputs)
             for name, path in [("ref", bench.ckpt), ("onnx", bench.exp / "model.onnx"),
                                ("broken", bench.exp / "broken.onnx")]}
    matrix = agreement_matrix({name: ("rt", binarize(p)) for name, p in probs.items()})
    assert matrix["names"] == ["ref", "onnx", "broken"] and matrix["images"] == 2 and matrix["pixels"] == 2 * 256 * 256
    cells = np.array(matrix["agreement"])
    assert np.array_equal(cells, cells.T) and np.all(np.diag(cells) == 1)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        a, b = list(probs.values())[i], list(probs.values())[j]
        assert cells[i, j] == pytest.approx(compare(a, b).agreement, abs=1e-12)
        assert matrix["differing_pixels"][i][j] == round((1 - cells[i, j]) * matrix["pixels"])
    assert cells[0, 1] > 0.999 and cells[0, 2] < 0.99 and cells[1, 2] < 0.99  # the broken file stands out
    assert percent(cells[0, 2], 2) == f"{100 * cells[0, 2]:.2f}" and percent(1.0, 2) == "100"
    assert percent(1 - 1 / matrix["pixels"], 2) == ">99.99"  # one differing pixel never reads as 100
    with pytest.raises(EGEUNetError, match="differ in shape"):
        agreement_matrix({"ref": ("rt", binarize(probs["ref"])), "one": ("rt", binarize(probs["onnx"])[:1])})


def test_report_has_the_agreement_matrix(sweep):
    """results.json, report.md and agreement.png carry the matrix of every target that ran, on the sweep's images;
    each target's cell against the reference is its row's agreement."""
    from egeunet.benchmark.agreement import percent

    matrix = sweep.results["agreement"]
    ran = ["model.pt (reference)", *(name for name, row in sweep.rows.items() if "agreement" in row)]
    assert matrix["names"] == ran and "broken.onnx" in ran and matrix["images"] == sweep.results["images"] == 2
    assert matrix["runtimes"] == [sweep.rows[name]["runtime"] for name in ran]
    for name, cell in zip(ran[1:], matrix["agreement"][0][1:]):
        assert cell == pytest.approx(sweep.rows[name]["agreement"], abs=1e-12)
    assert (sweep.out / "agreement.png").read_bytes()[:8] == PNG_MAGIC
    report = (sweep.out / "report.md").read_text()
    section = report.split("## Agreement matrix")[1]
    assert "over the same 2 images" in section and "![agreement matrix](agreement.png)" in section
    broken = ran.index("broken.onnx")
    line = next(line for line in section.splitlines() if "broken.onnx @onnxruntime" in line)
    assert percent(matrix["agreement"][broken][0], 3) in line
    assert "mask agreement % between targets, 2 images" in report.split("## Summary")[1].split("```")[1]


def test_sizes_split_weights_from_graph(bench):
    for name in ("model.onnx", "tiny.tflite"):
        sizes = artifact_sizes(bench.exp / name)
        assert sizes["weight_bytes"] > 0 and sizes["graph_bytes"] > 0
        assert sizes["weight_bytes"] + sizes["graph_bytes"] == sizes["bytes"] == (bench.exp / name).stat().st_size
        assert 0 < sizes["gzip_bytes"]
    assert artifact_sizes(bench.exp / "model.onnx")["weight_bytes"] > 150_000  # most of 53,374 fp32 parameters


@pytest.mark.parametrize("name", ["tiny.tflite", "model.onnx"])
def test_byte_accounting_adds_up(bench, name):
    """Data by type sums to the data, data + structure to the file, ops to the op counts; TFLite data equals the
    buffers' bytes."""
    from egeunet.runtime.tflite_file import constant_data_bytes

    record = artifact_sizes(bench.exp / name)["accounting"]
    assert sum(record["constant_data_by_type"].values()) == record["constant_data_bytes"] > 0
    assert record["constant_data_bytes"] + record["structure_bytes"] == record["bytes"]
    assert sum(record["op_counts"].values()) == record["ops"] > 0
    assert record["structure_bytes_per_op"] == pytest.approx(record["structure_bytes"] / record["ops"], abs=0.1)
    if name.endswith(".tflite"):
        assert record["constant_data_bytes"] == constant_data_bytes((bench.exp / name).read_bytes())


def test_dataset_without_masks_still_measures_drift(bench, tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(bench.exp / "model.onnx", folder / "model.onnx")  # no manifest: every model file in the folder
    common = ["benchmark", str(folder), "--data", str(bench.nomask), "--reference", str(bench.ckpt), "--runs", "2",
              "--warmup", "0", "--agreement", "0.99"]
    assert main([*common, "--out", str(tmp_path / "out")]) == 0  # agreement needs only the reference
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["masks"] is False
    row = {r["name"]: r for r in results["rows"]}["model.onnx"]
    assert row["agreement"] > 0.999 and "miou" not in row and row["gate"] == "pass"
    assert "no masks" in (tmp_path / "out" / "report.md").read_text()
    assert "no masks" in capsys.readouterr().out
    # an mIoU-drop gate cannot be computed without masks: that is a failure, never a silent pass
    assert main([*common, "--iou-drop", "0.5", "--out", str(tmp_path / "out2")]) == 1
    row = {r["name"]: r for r in json.loads((tmp_path / "out2" / "results.json").read_text())["rows"]}["model.onnx"]
    assert row["gate"] == "fail" and "no ground-truth masks" in row["gate_reasons"][0]


def test_missing_reference_marks_its_row_and_still_measures_artifacts(bench, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(bench.exp / "model.onnx", folder / "model.onnx")
    (folder / "manifest.json").write_text(json.dumps({"model": {"path": str(tmp_path / "gone.pt")},
                                                      "artifacts": [{"file": "model.onnx", "format": "onnx"}]}))
    args = ["benchmark", str(folder), "--data", str(bench.data), "--split", "all", "--n-held", "1", "--runs", "1",
            "--warmup", "0", "--out", str(tmp_path / "out")]
    assert main(args) == 1  # the reference's row failed
    assert main([*args, "--keep-going"]) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert rows[0]["reference"] and rows[0]["status"] == "failed" and rows[0]["note"] == "file missing"
    assert rows[1]["status"] == "ok" and "miou" in rows[1] and "agreement" not in rows[1]
    assert "the reference did not run" in rows[1]["note"]
    # with a gate, the moved checkpoint makes the run fail and says which check could not run and why
    assert main(["benchmark", str(folder), "--data", str(bench.data), "--split", "all", "--n-held", "1", "--runs", "1",
                 "--warmup", "0", "--agreement", "0.99", "--out", str(tmp_path / "gated")]) == 1
    row = json.loads((tmp_path / "gated" / "results.json").read_text())["rows"][1]
    assert row["gate"] == "fail" and "mask agreement could not be checked" in row["gate_reasons"][0]
    assert "gone.pt" in row["gate_reasons"][0] and "file missing" in row["gate_reasons"][0]


def test_a_runtime_this_platform_lacks_fails_only_when_named(bench, tmp_path, capsys):
    """CoreML off macOS: skipped with its reason in a sweep (exit 0 when the rest pass); named in --runtimes, the row
    fails and so does the command."""
    import platform

    if platform.system() == "Darwin":
        pytest.skip("CoreML runs on macOS")
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copytree(bench.exp / "model.mlpackage", folder / "model.mlpackage")
    shutil.copy(bench.exp / "model.onnx", folder / "model.onnx")
    common = ["benchmark", str(folder), "--reference", str(bench.ckpt), "--runs", "1", "--warmup", "0",
              "--no-sensitivity"]
    assert main([*common, "--out", str(tmp_path / "all")]) == 0
    rows = {r["name"]: r for r in json.loads((tmp_path / "all" / "results.json").read_text())["rows"]}
    assert rows["model.mlpackage"]["status"] == "skipped" and rows["model.onnx"]["status"] == "ok"
    assert "skipped [1]" in capsys.readouterr().out
    assert main([*common, "--runtimes", "CoreML", "--out", str(tmp_path / "named")]) == 1
    rows = {r["name"]: r for r in json.loads((tmp_path / "named" / "results.json").read_text())["rows"]}
    assert rows["model.mlpackage"]["status"] == "not runnable" and "needs macOS" in rows["model.mlpackage"]["note"]
    assert "1 of 2 rows failed (model.mlpackage)" in capsys.readouterr().err


def test_unknown_runtime_and_missing_model_are_one_line_errors(bench, tmp_path, capsys):
    args = ["--data", str(bench.data), "--out", str(tmp_path / "o")]
    assert main(["benchmark", str(bench.ckpt), "--runtimes", "tensorrt", *args]) == 1
    assert main(["benchmark", str(tmp_path / "missing.onnx"), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "unknown runtime 'tensorrt'" in err[0] and "onnxruntime" in err[0]
    assert "no such file" in err[1]


def test_runtimes_filter_keeps_the_folder_checkpoint_as_reference(bench, tmp_path):
    """`--runtimes onnxruntime` on a folder with a .pt and an .onnx: only the ONNX row, still compared with the .pt."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(bench.ckpt, folder / "model.pt")
    shutil.copy(bench.exp / "model.onnx", folder / "model.onnx")
    assert main(["benchmark", str(folder), "--data", str(bench.data), "--split", "all", "--n-held", "1", "--runs", "1",
                 "--warmup", "0", "--runtimes", "onnxruntime", "--agreement", "0.99", "--no-sensitivity",
                 "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["reference"].endswith("model.pt")
    rows = [r for r in results["rows"] if not r["reference"]]
    assert [r["runtime"] for r in rows] == ["onnxruntime"] and rows[0]["agreement"] > 0.999


def test_time_interleaved_alternates_the_functions():
    from egeunet.benchmark.latency import time_interleaved

    calls = []
    times = time_interleaved([lambda: calls.append("a"), lambda: calls.append("b")], runs=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up round, then the first call rotates
    assert [len(t) for t in times] == [3, 3]


@pytest.fixture(scope="module")
def exported_onnx(tmp_path_factory) -> SimpleNamespace:
    """A 64 px checkpoint and its egeunet fp32 ONNX export (contract with ORT's recommended options), no manifest;
    two sample images."""
    from egeunet.data import write_sample_dataset
    from egeunet.export import deploy_form, get_format
    from egeunet.export.spec import ExportSpec

    root = tmp_path_factory.mktemp("ortopts")
    folder = root / "models"
    folder.mkdir()
    torch.manual_seed(0)
    model = EGEUNet().eval()
    save_checkpoint(folder / "model.pt", model, input_size=64)
    exporter, spec = get_format("onnx"), ExportSpec(size=64)
    exporter.export(deploy_form(model, 64, False, False), spec, folder / "model.onnx", exporter.recipes("fp32", spec)[0])
    return SimpleNamespace(folder=folder, onnx=folder / "model.onnx", data=write_sample_dataset(root / "data", 2, seed=3))


def test_onnx_is_timed_with_default_and_recommended_options(exported_onnx, tmp_path, capsys):
    """Both ORT option sets timed (real runs), the contract's list recorded, ratio = recommended / default p50;
    accuracy once per artifact; --ort-options default times ORT's defaults alone."""
    common = ["benchmark", str(exported_onnx.folder), "--data", str(exported_onnx.data), "--split", "all",
              "--n-held", "1", "--runtimes", "onnxruntime", "--warmup", "1", "--no-sensitivity", "--agreement", "0.99"]
    assert main([*common, "--runs", "5", "--out", str(tmp_path / "both")]) == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "both" / "results.json").read_text())
    (row,) = [r for r in results["rows"] if r["runtime"] == "onnxruntime"]
    assert row["ort_options"] == "recommended" and row["recommended_from"] == "artifact contract"
    assert row["disabled_optimizers"] == row["recommended_disabled_optimizers"] == ["NchwcTransformer"]
    assert row["agreement"] > 0.999 and row["gate"] == "pass"
    default = row["ort_default"]
    assert default["disabled_optimizers"] == []
    for rec, dft, ratio in zip(row["by_threads"], default["by_threads"], default["recommended_over_default"]):
        assert rec["model"]["runs"] == dft["model"]["runs"] == 5 and dft["end_to_end"]["runs"] == 5
        assert dft["model"]["p50_ms"] > 0 and dft["load_ms"] > 0
        assert ratio["model_p50"] == pytest.approx(rec["model"]["p50_ms"] / dft["model"]["p50_ms"])
        assert ratio["end_to_end_p50"] == pytest.approx(rec["end_to_end"]["p50_ms"] / dft["end_to_end"]["p50_ms"])
    with open(tmp_path / "both" / "results.csv") as f:
        lines = [r for r in csv.DictReader(f) if r["runtime"] == "onnxruntime"]
    assert [(r["ort_options"], r["disabled_optimizers"]) for r in lines] == [("recommended", "NchwcTransformer"),
                                                                            ("default", "")]
    assert float(lines[0]["model_p50_vs_default"]) == pytest.approx(default["recommended_over_default"][0]["model_p50"])
    assert lines[0]["agreement"] and not lines[1]["agreement"]  # accuracy measured once, on the recommended line
    report = (tmp_path / "both" / "report.md").read_text()
    faster = default["recommended_over_default"][0]["model_p50"] < 0.995  # "recommended" only when it was faster here
    for text in (report, printed):
        assert ("ort recommended" if faster else "ort contract") in text and "ort defaults" in text
        assert ("contract's options, by" if faster else "ORT defaults, by") in text or "same speed" in text
        assert "NchwcTransformer off (artifact contract)" in text
    assert "## ONNX Runtime options" in report

    assert main([*common, "--runs", "2", "--ort-options", "default", "--out", str(tmp_path / "default")]) == 0
    (row,) = [r for r in json.loads((tmp_path / "default" / "results.json").read_text())["rows"]
              if r["runtime"] == "onnxruntime"]
    assert row["ort_options"] == "default" and row["disabled_optimizers"] == [] and "ort_default" not in row
    assert row["recommended_disabled_optimizers"] == ["NchwcTransformer"] and row["by_threads"][0]["model"]["runs"] == 2
    assert "ort defaults" in (tmp_path / "default" / "report.md").read_text()
