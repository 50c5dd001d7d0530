"""native_check/litert_run.c compiled here with gcc against the LiteRT C API library (libLiteRt.so) that the
ai-edge-litert wheel ships, run on the golden inputs of freshly exported TFLite models: the artifacts run in
the native runtime a phone links, with the same numbers as LiteRT in Python."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from demo_artifacts import ROOT, golden_index, require_tool, run

SOURCE = ROOT / "native_check" / "litert_run.c"
FP32_TOLERANCE = 1e-5


def _litert_lib_dir() -> Path:
    import ai_edge_litert

    lib = Path(ai_edge_litert.__file__).parent
    if not (lib / "libLiteRt.so").exists():
        pytest.fail(f"ai-edge-litert {lib} ships no libLiteRt.so (the LiteRT C API library this check links)")
    return lib


def test_litert_c_api_matches_python(tmp_path):
    gcc = require_tool("gcc")
    lib = _litert_lib_dir()
    exe = tmp_path / "litert_run"
    run([gcc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=199309L", "-o", str(exe),
         str(SOURCE), f"-L{lib}", "-l:libLiteRt.so", f"-Wl,-rpath,{lib}"], timeout=120)
    golden, index = golden_index()
    report = {}
    for art in (a for a in index["artifacts"] if a["file"].endswith(".tflite")):
        folder, args = golden / art["folder"], []
        for image in index["images"]:
            name = image["name"]
            np.load(folder / f"{name}.in.npy").tofile(tmp_path / f"{name}.in.bin")
            args += [str(tmp_path / f"{name}.in.bin"), str(tmp_path / f"{name}.out.bin")]
        # the batch form: every image back to back in one file, outputs back to back in one file
        np.concatenate([np.load(folder / f"{i['name']}.in.npy") for i in index["images"]]).tofile(tmp_path / "all.in.bin")
        args += [str(tmp_path / "all.in.bin"), str(tmp_path / "all.out.bin")]
        proc = run([str(exe), str(golden.parent / art["file"]), *args], timeout=180)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert lines[0]["input_bytes"] == int(np.prod(art["input_shape"])) * np.dtype(art["input_dtype"]).itemsize
        worst = 0.0
        for image in index["images"]:
            expected = np.load(folder / f"{image['name']}.out.npy")
            got = np.fromfile(tmp_path / f"{image['name']}.out.bin", dtype=expected.dtype).reshape(expected.shape)
            diff = float(np.abs(got.astype(np.float64) - expected).max())
            worst = max(worst, diff)
            if expected.dtype == np.float32:
                assert diff <= FP32_TOLERANCE, f"{art['file']} {image['name']}: C differs from Python by {diff}"
            else:  # same runtime, same integer kernels: identical
                assert np.array_equal(got, expected), f"{art['file']} {image['name']}: int8 output differs by {diff}"
        singles = b"".join((tmp_path / f"{image['name']}.out.bin").read_bytes() for image in index["images"])
        assert (tmp_path / "all.out.bin").read_bytes() == singles, f"{art['file']}: batch file differs from single runs"
        assert lines[-1]["tensors"] == len(index["images"])
        report[art["file"]] = {"max_abs_diff": worst, "ms": [ms for line in lines[1:-1] for ms in line["ms"]]}
    assert any(np.dtype(a["output_dtype"]) == np.int8 or "int8" in a["file"] for a in index["artifacts"])
    print("C (libLiteRt.so) vs Python LiteRT:", report)
