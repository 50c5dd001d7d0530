"""The distribution: every package ships, export/ and benchmark/ install under egeunet, CLI works."""
from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

from egeunet.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_every_package_under_the_egeunet_name(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path)], check=True)
    (wheel,) = tmp_path.glob("egeunet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"egeunet"}
    installed_as = {"egeunet": "egeunet", "export": "egeunet/export", "benchmark": "egeunet/benchmark"}
    source_packages = {
        str(Path(installed_as[top]) / p.parent.relative_to(ROOT / top))
        for top in installed_as for p in (ROOT / top).rglob("__init__.py")
    }
    shipped = {str(Path(n).parent) for n in names if n.endswith("__init__.py")}
    assert source_packages == shipped


def test_installed_names_resolve_to_the_repository_folders():
    import egeunet.benchmark.harness
    import egeunet.export

    assert Path(egeunet.export.__file__).parent == ROOT / "export"
    assert Path(egeunet.benchmark.harness.__file__).parent == ROOT / "benchmark"


def _imported_modules(folder: Path) -> dict[str, set[str]]:
    """Every module each .py file under ``folder`` imports (top level or inside functions), by file."""
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_export_and_benchmark_never_import_each_other():
    """The layers: both stand on egeunet.runtime, egeunet.accuracy and the core (model, data, training), which never
    import them; only the CLI composes them."""
    for folder, other in (("export", "egeunet.benchmark"), ("benchmark", "egeunet.export")):
        for path, names in _imported_modules(ROOT / folder).items():
            crossing = sorted(n for n in names if n == other or n.startswith(other + "."))
            assert not crossing, f"{path} imports {crossing}"
    for path, names in _imported_modules(ROOT / "egeunet").items():
        if path.startswith(("egeunet/commands/", "egeunet/cli.py")):
            continue  # the CLI composes the layers
        assert not [n for n in names if n.startswith(("egeunet.export", "egeunet.benchmark"))], path


def test_info_prints_the_paper_count(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "53,374" in out and "45,806" in out and "0.0721 G" in out


def test_info_bad_size_is_one_line_error(capsys):
    assert main(["info", "--size", "250"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--size" in err and "size 250 is not a multiple of 32: use 256" in err


def test_console_script_is_installed():
    out = subprocess.run([str(Path(sys.executable).parent / "egeunet"), "--help"], capture_output=True, text=True, check=True)
    assert "info" in out.stdout
