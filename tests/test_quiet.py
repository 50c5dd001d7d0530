"""egeunet.quiet: converters' output is held back while they run, summarised in one line, shown on an error or with
--debug."""
from __future__ import annotations

import os
import subprocess
import sys

NOISY = r"""
import logging, os, sys, warnings
from egeunet.quiet import held, held_summary, write_held
print("egeunet: before", flush=True)
with held("fakelib"):
    sys.stdout.write("Running MIL default pipeline: 1/92\rRunning MIL default pipeline: 92/92\n")
    print("[START] LiteRT-Torch Convert")
    os.write(2, b"native: Created TensorFlow Lite XNNPACK delegate\n")
    logging.getLogger("coremltools").warning("Torch version 2.13 has not been tested with coremltools")
    warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning)
    if os.environ.get("FAIL"):
        raise RuntimeError("converter broke")
print("egeunet: after", flush=True)
print(held_summary(write_held(sys.argv[1])), flush=True)
"""


def _run(tmp_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NOISY, str(tmp_path / "held.log")], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_third_party_output_is_held_and_summarised(tmp_path):
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["egeunet: before", "egeunet: after"] and len(lines) == 3
    assert lines[2].startswith(f"held back converter output in {tmp_path / 'held.log'}")
    assert lines[2].endswith("fakelib 5 lines (1 warning)")
    log = (tmp_path / "held.log").read_text().splitlines()
    assert log[0] == "== fakelib"
    assert "Running MIL default pipeline: 92/92" in log and not any("1/92" in line for line in log)  # last frame only
    assert "[START] LiteRT-Torch Convert" in log
    assert "native: Created TensorFlow Lite XNNPACK delegate" in log  # file descriptor 2, not sys.stderr
    assert "Torch version 2.13 has not been tested with coremltools" in log  # logging's last-resort handler
    assert "FutureWarning: `isinstance(treespec, LeafSpec)` is deprecated" in log


def test_an_error_shows_what_was_held(tmp_path):
    proc = _run(tmp_path, FAIL="1")
    assert proc.returncode == 1
    assert "Torch version 2.13 has not been tested" in proc.stderr and "RuntimeError: converter broke" in proc.stderr
    assert "egeunet: after" not in proc.stdout


def test_debug_shows_everything_as_it_comes(tmp_path):
    proc = _run(tmp_path, EGEUNET_DEBUG="1")
    assert proc.returncode == 0, proc.stderr
    assert "[START] LiteRT-Torch Convert" in proc.stdout and "XNNPACK delegate" in proc.stderr
    assert "not been tested" in proc.stderr and "FutureWarning" in proc.stderr
    assert proc.stdout.splitlines()[-1] == ""  # nothing held, no summary
    assert not (tmp_path / "held.log").exists()


def test_a_log_gets_progress_lines_while_a_converter_runs_held():
    """One item that takes long (a conversion) still gives the log a progress line every INTERVAL_S, although the
    converter's own output is held."""
    script = r"""
import time
import egeunet.progress as p
from egeunet.quiet import held
p.INTERVAL_S = 0.2
for _ in p.progress(range(2), desc="exporting", unit="artifact"):
    with held("conv"):
        print("converter frame", flush=True)
        time.sleep(1.5)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "converter frame" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert all(line.startswith("exporting: ") for line in lines) and "\r" not in proc.stderr
    assert sum(line.startswith("exporting: 0% 0/2") for line in lines) >= 1  # heartbeat during the first item
    assert lines[-1].startswith("exporting: 100% 2/2")
