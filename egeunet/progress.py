"""Progress of long loops: a redrawn tqdm bar on a terminal, whole plain lines in logs.

tqdm off a terminal still redraws its bar with carriage returns, so a log file collects hundreds
of them on one line. ``progress`` keeps tqdm on a terminal and otherwise prints tqdm's own status
text as a line to stderr every ``INTERVAL_S`` seconds or at every tenth of the total, whichever
comes first, plus a final line. Bars made with ``leave=False`` (inner loops such as one epoch) print
only the timed lines, and their final line only when they printed anything before it. A kept bar also
prints a line when no bar has printed for twice ``INTERVAL_S`` (one item running long: a converter at
work for a minute), from a thread, to a copy of stderr taken when the bar starts, so held converter
output (``egeunet.quiet``) does not swallow it; an inner bar's timed lines keep it quiet.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, Union

from tqdm import tqdm

INTERVAL_S = 5.0  # at most this long between two lines of a running loop
STEPS = 10  # and a line at each tenth of the total (bars kept with leave=True)
COUNTED = "{percentage:.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
UNCOUNTED = "{n_fmt} [{elapsed}, {rate_fmt}{postfix}]"
_clock = time.monotonic
_last_any = [0.0]  # when any bar of this process last printed a line


class LineProgress:
    """The part of tqdm's interface the package uses (iterate, update, set_postfix, close, with), as log lines."""

    def __init__(self, iterable: Iterable | None, desc: str | None, total: int | None, unit: str, leave: bool) -> None:
        self.iterable = iterable
        self.total = total if total is not None else _length(iterable)
        self.desc, self.unit, self.leave = desc, unit, leave
        self.n = 0
        self.postfix = ""
        self.start = self.last_line = _clock()
        self.step = 0  # tenths of the total reached so far
        self.lines = 0
        self.closed = False
        self._lock = threading.Lock()
        self._out = _own_stderr()
        self._stop = threading.Event()
        if leave:  # a line every INTERVAL_S while an item runs long; stops at close
            threading.Thread(target=self._heartbeat, name="egeunet-progress", daemon=True).start()

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items; print a line when the interval passed or a new 10% step is reached."""
        with self._lock:
            self._update(n)

    def _update(self, n: int) -> None:
        self.n += n
        done = self.total is not None and self.n >= self.total
        step = self.n * STEPS // self.total if self.total else 0
        if self.leave and step > self.step:
            self.step = step
            if not done:
                self._print()
                return
        if not done and _clock() - self.last_line >= INTERVAL_S:
            self._print()

    def set_postfix(self, **values: Any) -> None:
        """Text after the counters, as tqdm shows it (key=value, ...)."""
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def close(self) -> None:
        """Print the final line (for transient bars only when they printed before)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._stop.set()
            if self.leave or self.lines:
                self._print()
            if self._out is not sys.stderr:
                self._out.close()

    def _heartbeat(self) -> None:
        """While the bar is open: a line whenever no bar printed for ``2 * INTERVAL_S`` (one item running long)."""
        while not self._stop.wait(INTERVAL_S):
            with self._lock:
                if not self.closed and _clock() - max(self.last_line, _last_any[0]) >= 2 * INTERVAL_S:
                    self._print()

    def _print(self) -> None:
        counts = COUNTED if self.total else UNCOUNTED
        prefix = f"{self.desc}: " if self.desc else ""
        line = tqdm.format_meter(self.n, self.total, _clock() - self.start, prefix=prefix, unit=self.unit,
                                 postfix=self.postfix or None, bar_format="{desc}" + counts)
        print(line, file=self._out, flush=True)
        self.lines += 1
        self.last_line = _last_any[0] = _clock()


Progress = Union[tqdm, LineProgress]


def progress(iterable: Iterable | None = None, desc: str | None = None, total: int | None = None, unit: str = "it",
             leave: bool = True, disable: bool = False) -> Progress:
    """A tqdm bar when stderr is a terminal, else a ``LineProgress`` printing whole lines; nothing when disabled."""
    if disable or _is_terminal():
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, disable=disable)
    return LineProgress(iterable, desc, total, unit, leave)


def _own_stderr():
    """A line-buffered copy of file descriptor 2 as it is now (the stream itself when it has none, as under pytest)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stderr
    sys.stderr.flush()
    return os.fdopen(os.dup(fd), "w", buffering=1)


def _is_terminal() -> bool:
    """Whether stderr (where bars go) is an interactive terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def _length(iterable: Iterable | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None
