"""The runtime layer: runtimes per file, (artifact, runtime) targets, manifest paths, the launcher's cleanup."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from egeunet.errors import EGEUNetError
from egeunet.runtime.artifacts import Artifact, Target, file_digest, manifest_source, read_manifest
from egeunet.runtime.launcher import CHILD, python_module
from egeunet.runtime.runners import open_runner, runtime_for, runtimes_for


def test_each_file_type_has_a_default_runtime_and_a_wrong_one_is_refused(tmp_path):
    assert runtime_for("m.onnx") == "onnxruntime" and runtime_for("m.TFLITE") == "litert"
    assert runtimes_for("m.pt")[0] == "pytorch" and runtimes_for("m.engine") == []
    with pytest.raises(EGEUNetError, match="unsupported model format '.engine'"):
        runtime_for("m.engine")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    with pytest.raises(EGEUNetError, match="runtime 'litert' does not run .onnx files"):
        open_runner(model, "litert")


def test_targets_name_non_default_runtimes():
    artifact = Artifact("m.tflite", Path("m.tflite"))
    assert Target(artifact, "litert").name == "m.tflite"
    assert Target(artifact, "litert-arm64", default_runtime=False).name == "m.tflite @litert-arm64"


def test_manifest_source_resolves_relative_paths_against_the_manifest_folder(tmp_path, monkeypatch):
    folder = tmp_path / "export"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"elsewhere")  # a same-named file in the current folder must not be used
    path, sha = manifest_source({"model": {"path": "model.pt", "sha256": "ab"}}, folder)
    assert path == folder / "model.pt" and sha == "ab"
    assert manifest_source({"model": {"path": "/abs/model.pt"}}, folder)[0] == Path("/abs/model.pt")
    assert manifest_source({}, folder) == (None, None)


def test_artifact_check_names_missing_and_changed_files(tmp_path):
    f = tmp_path / "a.onnx"
    assert Artifact("a", f).check().problem == "file missing"
    f.write_bytes(b"one")
    assert Artifact("a", f, sha256=file_digest(f)[1]).check().problem is None
    assert "sha256 mismatch" in Artifact("a", f, sha256="0" * 64).check().problem


@pytest.mark.parametrize("text,message", [("{", "not a readable export manifest"), ("[]", "no 'artifacts' list"),
                                          ('{"artifacts": [1]}', "no 'artifacts' list"), ("\udcff", "not a readable")])
def test_bad_manifests_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "manifest.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(EGEUNetError, match=message):
        read_manifest(tmp_path)


def test_launcher_kills_the_whole_child_group_on_timeout(tmp_path):
    marker = tmp_path / "grandchild.pid"
    code = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    start = time.perf_counter()
    with pytest.raises(subprocess.TimeoutExpired):
        CHILD.run([sys.executable, "-c", code], timeout=3)
    assert time.perf_counter() - start < 30
    grandchild = int(marker.read_text())
    time.sleep(0.3)
    stat = Path(f"/proc/{grandchild}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert python_module("egeunet.benchmark.probe", "a")[1:] == ["-m", "egeunet.benchmark.probe", "a"]
    assert json.loads(CHILD.run([sys.executable, "-c", "print('[1]')"]).stdout) == [1]
