"""The web demo (web_demo/) in Debian's headless Chromium, served from 127.0.0.1 only: onnxruntime-web runs freshly
exported ONNX models (fp32 and int8, NHWC, 256 px, of a briefly trained model: tests/demo_artifacts.py) on the
golden photos through the page's own decode, preprocessing and post-processing, compared with onnxruntime in Python;
then, after the page was loaded once and reloaded offline (service worker), a photo goes through the real file input.

The page's input tensor must equal Python's (it is bit-exact). fp32: 90% of probabilities within 1e-4 and the masks at
the photo's size equal on 99.9% of pixels, not 1e-4 everywhere: any two fp32 runtimes sum in different orders and
this network amplifies rounding near the 0.5 boundary. int8 (QDQ): masks equal on 99% of each photo's pixels.

Why int8 once disagreed on 5-8% of pixels, measured (../shared/notes/browser-int8.md): PyTorch's GroupNorm exported as
one InstanceNormalization over 131,072 values per group, which onnxruntime-web sums sequentially in float32 (a group
mean 3.5e-2 off, Python's vectorised kernel 2.3e-3); the next QuantizeLinear then flipped 1.9% of its values, and the
flips grew through the network. ONNX files now compute GroupNorm with staged means, no reduction over more than 8,192
values (``egeunet.model.deploy.for_onnx``, tests/test_onnx_reductions.py): on the demo model (12 epochs) browser vs Python
int8 masks went from 99.83-99.90% to 99.997-100% per photo, fp32 max |dprob| from 1.7e-4 to 7e-6. The model must be
trained: with random weights (the reference checkpoint) int8 agrees with its own fp32 on only ~93% of pixels, and
rounding alone flips whole quantisation steps, so the int8 test first checks that int8 agrees with fp32 in Python
within the int8 gate.
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from demo_artifacts import MISSING_TOOLS, ROOT, golden_index, require_tool, run
from egeunet.export.spec import default_gates

WEB = ROOT / "web_demo"
INPUT_TOLERANCE = 1e-3  # the preprocessing contract's tolerance (measured: 0)
PROB_TOLERANCE = 1e-4  # for 90% of pixels
MASK_AGREEMENT = 0.999
INT8_MASK_AGREEMENT = 0.99  # int8 ONNX: browser vs Python, per photo
INT8_OWN_AGREEMENT = default_gates()["int8"].min_agreement  # int8 vs fp32 in Python: the int8 gate's own limit


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """http://127.0.0.1:PORT/ serving web_demo/ as /web_demo/ and the export folder as /export/."""
    if not (WEB / "node_modules" / "playwright-core").exists() or not (WEB / "vendor" / "ort.wasm.min.js").exists():
        why = MISSING_TOOLS.read_text().strip() if MISSING_TOOLS.exists() else "run scripts/setup_demo_tools.sh"
        pytest.skip(f"web_demo npm packages not installable here: {why}")
    root = tmp_path_factory.mktemp("web")
    (root / "web_demo").symlink_to(WEB)
    (root / "export").symlink_to(golden_index(trained=True)[0].parent)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _array(text: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def _mask(golden: Path, artifact: str, image: str) -> np.ndarray:
    """Python onnxruntime's mask of ``artifact`` on a golden photo, at the photo's size (0/255)."""
    return cv2.imread(str(golden / artifact / f"{image}.mask.png"), cv2.IMREAD_GRAYSCALE)


@pytest.fixture(scope="module")
def browser_runs(server, tmp_path_factory) -> dict[str, list[dict]]:
    """Every ONNX artifact on every golden photo in the page (one load), measured against Python onnxruntime's
    golden vectors: per artifact file, one record per photo."""
    node, _ = require_tool("node"), require_tool("chromium")
    golden, index = golden_index(trained=True)
    onnx = [a for a in index["artifacts"] if a["file"].endswith(".onnx")]
    out = tmp_path_factory.mktemp("page") / "golden.json"
    run([node, str(WEB / "test" / "run_page.mjs"), "golden",
         f"{server}/web_demo/index.html?test=golden&golden=../export/golden/", str(out)], timeout=200, cwd=WEB)
    page = json.loads(out.read_text())
    assert page["results"], f"page produced no results: {page['status']} {page['problems']}"
    assert not page["problems"], page["problems"]
    assert len(page["results"]) == len(onnx) * len(index["images"])
    runs: dict[str, list[dict]] = {}
    for r in page["results"]:
        folder = golden / r["artifact"]
        expected_in = np.load(folder / f"{r['image']}.in.npy")
        got_in = _array(r["input"], expected_in.dtype).reshape(expected_in.shape)
        expected_prob = np.load(folder / f"{r['image']}.prob.npy")
        got_prob = _array(r["prob"], np.float32).reshape(expected_prob.shape)
        got_mask = _array(r["mask"], np.uint8).reshape(r["height"], r["width"])
        d_prob = np.abs(got_prob.astype(np.float64) - expected_prob)
        runs.setdefault(r["artifact"], []).append({
            "image": r["image"], "ms": round(r["ms"], 1),
            "input_max_abs": float(np.abs(got_in.astype(np.float64) - expected_in).max()),
            "prob_p90_abs": float(np.quantile(d_prob, 0.9)), "prob_max_abs": float(d_prob.max()),
            "mask_agreement": float((got_mask == _mask(golden, r["artifact"], r["image"])).mean())})
    return runs


def _runs_of(runs: dict[str, list[dict]], precision: str) -> tuple[str, list[dict]]:
    """The one ONNX artifact of ``precision`` and its runs; prints each measure's value on its worst photo."""
    (name, records), = ((n, r) for n, r in runs.items() if precision in n)
    worst = {k: (min if k == "mask_agreement" else max)(r[k] for r in records) for k in records[0] if k != "image"}
    print(f"browser (onnxruntime-web wasm) vs Python onnxruntime, {name}, worst photo: {worst}")
    return name, records


def test_browser_matches_onnxruntime_python_fp32(browser_runs):
    _, records = _runs_of(browser_runs, "fp32")
    for m in records:
        assert m["input_max_abs"] <= INPUT_TOLERANCE, f"{m['image']}: input tensor differs: {m}"
        assert m["prob_p90_abs"] <= PROB_TOLERANCE, f"{m['image']}: probabilities differ: {m}"
        assert m["mask_agreement"] >= MASK_AGREEMENT, f"{m['image']}: masks differ: {m}"


def test_browser_matches_onnxruntime_python_int8(browser_runs):
    name, records = _runs_of(browser_runs, "int8")
    golden = golden_index(trained=True)[0]
    built = next(a for a in json.loads((golden.parent / "manifest.json").read_text())["artifacts"] if a["file"] == name)
    assert (built.get("quantization") or {}).get("int8_ops") and built["validation"]["passed"], \
        f"{name} is not a QDQ graph that passed its own int8 gate: {built.get('quantization')} {built['validation']}"
    fp32 = next(n for n in browser_runs if "fp32" in n)
    own = np.concatenate([(_mask(golden, name, m["image"]) == _mask(golden, fp32, m["image"])).ravel()
                          for m in records]).mean()
    assert own >= INT8_OWN_AGREEMENT, f"{name} agrees with {fp32} on {own:.4f} of the photos' pixels in Python: " \
        "the export's model is too fragile for int8 to mean anything here"
    for m in records:
        assert m["input_max_abs"] <= INPUT_TOLERANCE, f"{m['image']}: input tensor differs: {m}"
        assert m["mask_agreement"] >= INT8_MASK_AGREEMENT, f"{m['image']}: masks differ: {m}"


def test_offline_photo_through_the_ui(server, tmp_path):
    """Offline, a photo through the real UI: file input -> overlay canvas -> stats line, and a screenshot."""
    node, _ = require_tool("node"), require_tool("chromium")
    golden, index = golden_index(trained=True)
    fp32 = next(a["file"] for a in index["artifacts"] if a["file"].endswith(".onnx") and "fp32" in a["file"])
    shot = tmp_path / "page.png"
    proc = run([node, str(WEB / "test" / "run_page.mjs"), "photo", f"{server}/web_demo/index.html?model=../export/{fp32}",
                str(golden / index["images"][0]["image"]), str(shot)], timeout=120, cwd=WEB)
    ui = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ui["offline"] and "ms" in ui["stats"] and "%" in ui["stats"], ui
    assert not ui["problems"], ui["problems"]
    assert shot.stat().st_size > 0
