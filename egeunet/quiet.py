"""Hold back what converters write while they run, so a log keeps egeunet's own lines.

coremltools redraws its "Running MIL ... pipeline" bars and, when imported, logs "Torch version ... has not been
tested" and "Failed to load _MLModelProxy"; torchao logs "Failed to load ..._C_mxfp8..."; LiteRT-Torch prints
"[START]/[DONE]" lines; ai-edge-quantizer draws bars no setting turns off; all of them raise FutureWarnings.
``held(source)`` takes all of it while third-party code runs: Python's sys.stdout and sys.stderr, file descriptors 1
and 2 (native code, and log handlers bound to the original streams) and warnings. The held lines stay in this process
per source: ``held_summary`` says what was held in one line and ``write_held`` writes the text to a file. On an error
the held text's tail goes to stderr before the exception; with EGEUNET_DEBUG=1 (``egeunet --debug``) nothing is held.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

DEBUG_ENV = "EGEUNET_DEBUG"  # set (egeunet --debug sets it): show third-party output as it comes
TAIL_CHARS = 4000  # how much held text an error shows
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_held: dict[str, list[str]] = {}  # source -> lines held in this process


def showing_all() -> bool:
    """Whether third-party output is shown as it comes (EGEUNET_DEBUG set) instead of held."""
    return bool(os.environ.get(DEBUG_ENV))


def _lines(text: str) -> list[str]:
    """Held text as lines: a redrawn bar (frames joined by carriage returns) keeps its last frame; colours dropped."""
    return [line.rsplit("\r", 1)[-1].rstrip() for line in _ANSI.sub("", text).split("\n") if line.strip("\r ")]


@contextlib.contextmanager
def held(source: str, echo_on_error: bool = True) -> Iterator[list[str]]:
    """Hold everything written while the block runs; yields the list the held lines are added to when it ends.

    ``source`` names the library in ``held_summary``. On an exception the last ``TAIL_CHARS`` of the held text go to
    stderr first (unless ``echo_on_error`` is False: the caller reads the lines to explain the failure itself).
    """
    lines: list[str] = []
    if showing_all():
        yield lines
        return
    sys.stdout.flush()
    sys.stderr.flush()
    text = io.StringIO()
    saved = (os.dup(1), os.dup(2))
    failed = False
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings(record=True) as caught:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield lines
        except BaseException:
            failed = True
            raise
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            lines += _lines(sink.read().decode(errors="replace") + text.getvalue())
            lines += [f"{w.category.__name__}: {' '.join(str(w.message).split())}" for w in caught]
            _held.setdefault(source, []).extend(lines)
            if failed and echo_on_error and lines:
                sys.stderr.write("\n".join(lines)[-TAIL_CHARS:] + "\n")


def held_summary(log: str | os.PathLike | None = None) -> str:
    """One line on what was held in this process ("" when nothing): lines per source, warnings among them, where the
    full text is."""
    if not any(_held.values()):
        return ""
    parts = []
    for source, lines in _held.items():
        warned = sum(": " in line and line.split(": ", 1)[0].endswith("Warning") for line in lines)
        parts.append(f"{source} {len(lines)} line{'s' * (len(lines) != 1)}"
                     + (f" ({warned} warning{'s' * (warned != 1)})" if warned else ""))
    where = f" in {log}" if log else ""
    return f"held back converter output{where} (--debug shows it): {', '.join(parts)}"


def write_held(path: str | os.PathLike) -> Path | None:
    """Write every held line, under its source's name, to ``path``; None (no file) when nothing was held."""
    if not any(_held.values()):
        return None
    path = Path(path)
    path.write_text("".join(f"== {source}\n" + "".join(f"{line}\n" for line in lines)
                            for source, lines in _held.items() if lines))
    return path
