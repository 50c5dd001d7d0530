"""Shared by the phone and browser demo tests: one fresh `egeunet export` per test session, with golden vectors.

ONNX and TFLite, fp32 and int8 (full int8 with int8 I/O), NHWC: the phone layout, so the apps'
transposes and quantisation are exercised. The export writes ``golden/`` (``egeunet.golden``): the
vectors the Java core, the native LiteRT check and the browser page are compared against.
"""
from __future__ import annotations

import atexit
import functools
import importlib.util
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REFERENCE_DIR

ROOT = Path(__file__).resolve().parents[1]
MISSING_TOOLS = ROOT / "web_demo" / ".demo-tools-missing.txt"  # written by scripts/setup_demo_tools.sh


def require_tool(name: str) -> str:
    """Path of a command the setup script installs, or skip with the reason the install failed."""
    path = shutil.which(name)
    if path is None:
        why = MISSING_TOOLS.read_text().strip() if MISSING_TOOLS.exists() else "scripts/setup_demo_tools.sh was not run"
        pytest.skip(f"{name} not installable here: {why}")
    return path


_FAILURES: list[str] = []  # a failed export is reported once, not re-run by every test that needs it


def exported() -> Path:
    """Folder holding the fresh artifacts, manifest.json and golden/ (removed when the test session ends)."""
    if _FAILURES:
        pytest.fail(f"the shared demo export failed earlier in this session: {_FAILURES[0]}")
    try:
        return _export()
    except Exception as exc:
        _FAILURES.append(f"{type(exc).__name__}: {exc}"[:300])
        raise


@functools.lru_cache(maxsize=None)
def _export() -> Path:
    from egeunet.cli import main

    if importlib.util.find_spec("egeunet.commands.export") is None:
        pytest.skip("`egeunet export` (issue 4) is not in this tree yet: nothing to check the demos against")
    if not (REFERENCE_DIR / "best.pth").is_file():
        pytest.fail(f"reference checkpoint missing at {REFERENCE_DIR}")
    out = Path(tempfile.mkdtemp(prefix="egeunet-demo-")) / "export"
    atexit.register(shutil.rmtree, out.parent, ignore_errors=True)
    # The authors' weights: realistic activations (a random model's are not) and a real mask to show. Their fp32
    # artifacts pass the default fp32 gate (judged against float64, on any CPU's kernels). The int8 gates are opened:
    # these tests check that each artifact's runtimes agree (Python, C, Java around the interpreter, the browser),
    # not int8 accuracy, and on synthetic photos (not ISIC) with 8 calibration images int8 agrees with fp32 on ~93%.
    code = main(["export", str(REFERENCE_DIR / "best.pth"), "--formats", "onnx,tflite", "--precisions", "fp32,int8",
                 "--nhwc", "--int8-io", "--n-calib", "8", "--n-held", "2",
                 "--int8-agreement", "0", "--int8-iou-drop", "100", "--out", str(out)])
    assert code == 0, f"egeunet export failed with exit code {code}"
    assert (out / "golden" / "index.json").is_file(), "egeunet export wrote no golden vectors"
    return out


def golden_index() -> tuple[Path, dict]:
    """The golden folder and its index.json."""
    golden = exported() / "golden"
    return golden, json.loads((golden / "index.json").read_text())


def run(cmd: list[str], timeout: int, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it exits non-zero."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{cmd[0]} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc
