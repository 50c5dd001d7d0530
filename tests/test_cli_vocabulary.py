"""One option vocabulary: the README's table matches every command's --help, old names still parse (deprecated gate
names warn), names are taken in any case and unknown ones are rejected, --help shows the defaults."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from egeunet.cli import build_parser, main
from egeunet.commands import checks
from egeunet.errors import EGEUNetError

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _visible(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings --help shows (hidden aliases left out)."""
    return {o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings}


def _readme_table() -> dict[str, set[str]]:
    """option -> commands, from the README's "One name per option" table."""
    text = README.read_text()
    table = text[text.index("**One name per option**"):].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        options, _, commands = [cell.strip() for cell in line.strip("|").split("|")]
        for option in re.findall(r"`(--[a-z0-9-]+)`", options):
            rows[option] = {c.strip() for c in commands.split(",")}
    return rows


def test_readme_option_table_matches_help():
    """Each option of the table is in --help of exactly the commands the table lists."""
    commands = _commands()
    table = _readme_table()
    assert len(table) >= 15
    for option, listed in table.items():
        assert listed <= set(commands), (option, listed - set(commands))
        having = {name for name, parser in commands.items() if option in _visible(parser)}
        if option in ("--agreement", "--iou-drop"):
            assert having == {"benchmark"}, option
            continue
        if option in ("--int8-agreement", "--int8-iou-drop"):
            assert having == {"export"}, option
            continue
        assert having == listed, (option, having ^ listed)


@pytest.mark.parametrize("argv, dest, value", [
    (["train", "--data", "d", "--out", "o", "--batch-size", "4"], "batch", 4),
    (["finetune-int8", "m.pt", "--data", "d", "--out", "o", "--batch-size", "4"], "batch", 4),
    (["evaluate", "m.onnx", "--data", "d", "--batch-size", "4"], "batch", 4),
    (["benchmark", "m.onnx", "--out", "o", "--batch-size", "2"], "batch", 2),
    (["benchmark", "m.onnx", "--out", "o", "--limit", "3"], "n_held", 3),
    (["evaluate", "m.onnx", "--data", "d", "--runtime", "litert"], "runtimes", "litert"),
    (["predict", "m.onnx", "x.jpg", "--out", "o", "--runtime", "litert"], "runtimes", "litert"),
    (["benchmark", "m.onnx", "--out", "o", "--runtime", "litert"], "runtimes", "litert"),
    (["benchmark", "m.onnx", "--out", "o", "--split", "TEST"], "split", "test"),
    (["export", "m.pt", "--out", "o", "--calib-method", "Entropy"], "calib_method", "entropy"),
    (["info", "--variant", "Baseline"], "variant", "baseline"),
])
def test_old_names_and_any_case_parse(argv, dest, value, recwarn):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]  # aliases, not deprecated


@pytest.mark.parametrize("old, new, dest", [("--max-miou-drop", "--iou-drop", "iou_drop"),
                                            ("--min-agreement", "--agreement", "agreement")])
def test_deprecated_gate_names_warn_and_still_work(old, new, dest):
    with pytest.warns(FutureWarning, match=f"{old} is deprecated: use {new}"):
        args = build_parser().parse_args(["benchmark", "m.onnx", "--out", "o", old, "0.5"])
    assert getattr(args, dest) == 0.5
    assert getattr(build_parser().parse_args(["benchmark", "m.onnx", "--out", "o"]), dest) is None


def test_names_in_any_case_and_unknown_ones_rejected():
    formats = ("onnx", "tflite", "coreml")
    assert checks.names("--formats", "ONNX, TFLite,onnx", formats, "format") == ["onnx", "tflite"]
    with pytest.raises(EGEUNetError, match="unknown format 'onxx'; choose from onnx, tflite, coreml"):
        checks.names("--formats", "onnx,onxx", formats, "format")
    with pytest.raises(EGEUNetError, match="empty precision name"):
        checks.names("--precisions", "fp32,,int8", ("fp32", "fp16", "int8"), "precision")
    assert checks.one_runtime("LiteRT") == "litert"
    with pytest.raises(EGEUNetError, match="runs on one runtime"):
        checks.one_runtime("onnxruntime,litert")


def test_export_formats_are_checked_before_any_work(tmp_path, capsys):
    """Capitals pass (the error is then about the missing checkpoint); a misspelt format stops first, in one line."""
    assert main(["export", str(tmp_path / "missing.pt"), "--formats", "ONNX", "--precisions", "FP32",
                 "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "missing.pt" in err and "--formats" not in err
    assert main(["export", str(tmp_path / "missing.pt"), "--formats", "ONNX,TensorRT",
                 "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("egeunet export: error: --formats: unknown format 'TensorRT'; choose from onnx, tflite, coreml, "
                   "executorch (any case)")
    assert main(["benchmark", str(tmp_path / "m.onnx"), "--runtimes", "ORT", "--out", str(tmp_path / "c")]) == 1
    assert "unknown runtime 'ORT'; choose from pytorch, onnxruntime" in capsys.readouterr().err


def test_help_shows_defaults(capsys):
    for command, expected in (("export", ["--formats FORMATS", "(default: all)", "(default:",
                                          "fp32,fp16,int8)", "--int8-agreement", "(default: 0.99)",
                                          "--threads"]),
                              ("benchmark", ["--iou-drop", "default: no gate", "--n-held", "(default: all of it)"]),
                              ("demo", ["--threads", "(default: all)"])):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for piece in expected:
            assert piece in text, (command, piece)
        assert "--max-miou-drop" not in text and "--limit" not in text and "--batch-size" not in text
