"""The Android app's pure Kotlin core (android_demo/lesioncore, no Android imports) and its JUnit 4 tests compiled
here with Debian's kotlinc and run on the JDK against golden vectors of freshly exported TFLite models:
preprocessing, packing (NHWC, int8 I/O), probabilities, mask at the photo's size and overlay must match
the Python pipeline."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from demo_artifacts import ROOT, golden_index, require_tool, run

CORE = ROOT / "android_demo" / "lesioncore" / "src"
JARS = [Path("/usr/share/java/junit4.jar"), Path("/usr/share/java/hamcrest-core.jar"),
        Path("/usr/share/java/kotlin-stdlib.jar")]


def _cases_file(path: Path) -> list[str]:
    """Write the properties file GoldenTest reads: one case per (photo, TFLite artifact)."""
    golden, index = golden_index()
    lines, keys = [], []
    for art in (a for a in index["artifacts"] if a["file"].endswith(".tflite")):
        for image in index["images"]:
            key = f"{image['name']}@{art['file']}"
            keys.append(key)
            folder = golden / art["folder"]
            files = {"image": golden / image["image"], "input": golden / image["input"]}
            files.update({kind: folder / f"{image['name']}.{kind}.{ext}" for kind, ext in
                          (("in", "npy"), ("out", "npy"), ("prob", "npy"), ("mask", "png"), ("overlay", "png"))})
            lines += [f"{key}.{name}={value}" for name, value in files.items()]
            for field in ("size", "layout", "input_dtype", "input_scale", "input_zero_point",
                          "output_dtype", "output_scale", "output_zero_point"):
                if art[field] is not None:
                    lines.append(f"{key}.{field}={art[field]}")
            lines.append(f"{key}.baked={str(art['baked_preprocess']).lower()}")
    path.write_text("\n".join([f"cases={','.join(keys)}", *lines]) + "\n")
    return keys


def _compile(kotlinc: str, main: Path, tests: Path) -> None:
    """kotlinc the core into MAIN, against nothing but the JDK and Kotlin's standard library (JVM 1.8 bytecode), then
    its JUnit tests into TESTS."""
    kotlin = [kotlinc, "-jvm-target", "1.8", "-Werror", "-no-reflect"]
    run([*kotlin, "-d", str(main), *sorted(str(p) for p in (CORE / "main").rglob("*.kt"))], timeout=180)
    run([*kotlin, "-cp", ":".join(map(str, [main, *JARS])), "-d", str(tests),
         *sorted(str(p) for p in (CORE / "test").rglob("*.kt"))], timeout=180)


def test_lesioncore_junit_against_golden(tmp_path):
    kotlinc, java = require_tool("kotlinc"), require_tool("java")
    missing = [str(j) for j in JARS if not j.exists()]
    if missing:
        pytest.skip(f"JUnit 4 / Kotlin not installable here: missing {', '.join(missing)} (see scripts/setup_demo_tools.sh)")
    main, tests = tmp_path / "main", tmp_path / "tests"
    # the JVM compiles while Python makes the session's demo export (this test is usually its first user): the
    # compiler and the export's conversions are each mostly one thread, so on 2 cores the ~25 s of kotlinc overlap it
    with ThreadPoolExecutor(max_workers=1) as pool:
        compiled = pool.submit(_compile, kotlinc, main, tests)
        keys = _cases_file(tmp_path / "cases.properties")
        compiled.result()
    assert any("int8" in k for k in keys), "the export should include a full-int8 TFLite model"
    classpath = ":".join(map(str, JARS))
    proc = run([java, f"-Dgolden.cases={tmp_path / 'cases.properties'}", "-cp", f"{tests}:{main}:{classpath}",
                "org.junit.runner.JUnitCore", "org.egeunet.lesion.GoldenTest"], timeout=120)
    assert re.search(r"^OK \(5 tests\)", proc.stdout, re.M), proc.stdout[-2000:]
    measured = re.findall(r"^GOLDEN (\S+) (\S+) (\S+)$", proc.stdout, re.M)
    assert {k for k, _, _ in measured} == set(keys)
    worst: dict[str, float] = {}
    for _, metric, value in measured:
        worst[metric] = max(worst.get(metric, float("-inf")), float(value))
    print("Kotlin core vs Python, worst case over photos and models:", worst)
