"""`--json`, the same on every command that reports results (export, benchmark, evaluate, info).

One option name and one document shape: a JSON object on stdout whose first keys are ``command``, ``model``,
``exit_code`` (the status the command exits with) and ``summary`` (the one-line reason for a non-zero status, else
""), then the command's own fields. While the command works, anything
else it prints (tables, progress, third-party lines, native code writing to file descriptor 1) goes to stderr, so
stdout holds only the JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator

HELP = "print machine-readable results as one JSON object on stdout (tables and messages go to stderr)"


def add_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--json`` with the shared help text."""
    parser.add_argument("--json", action="store_true", help=HELP)


@contextlib.contextmanager
def stdout_to_stderr(active: bool) -> Iterator[None]:
    """When ``active``, send stdout (Python's and file descriptor 1) to stderr until the block ends."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def emit(command: str, model: object, exit_code: int, fields: dict, summary: str = "") -> None:
    """Print the command's JSON document: ``command``, ``model``, ``exit_code``, ``summary``, then ``fields`` (a
    field of the same name as one of those four is left out)."""
    head = {"command": command, "model": None if model is None else str(model), "exit_code": exit_code,
            "summary": summary}
    print(json.dumps({**head, **{k: v for k, v in fields.items() if k not in head}}, indent=1, default=str))
