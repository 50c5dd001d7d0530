"""Starting a runtime outside this process: a Python module in a child interpreter, or a program under an emulator.

Every child runs in its own process group and is killed with it when this process is interrupted (SIGINT) or
terminated (SIGTERM, which the CLI turns into an exception so that this cleanup runs), times out, or fails: no
timing child is ever left running.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Launcher:
    """How to start a program: ``prefix`` goes in front of its command line (e.g. ``qemu-aarch64 -L ROOT``)."""

    prefix: tuple[str, ...] = ()

    def program(self, *argv: str) -> list[str]:
        """Command line running a program through this launcher's prefix."""
        return [*self.prefix, *argv]

    def run(self, argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run ``argv`` to completion (stdout/stderr captured as text); the whole process group dies with us."""
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:  # timeout, Ctrl-C, SIGTERM (raised by the CLI's handler), or any error
            _kill_group(proc)
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def python_module(module: str, *args: str) -> list[str]:
    """Command line running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child's process group and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


CHILD = Launcher()
