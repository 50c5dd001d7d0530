"""The environment block of a report: CPU model, cores, OS, Python and runtime library versions."""
from __future__ import annotations

import os
import platform
import sys

from egeunet.versions import library_versions


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux, sysctl on macOS), else platform's guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        import subprocess

        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return platform.processor() or platform.machine()


def environment() -> dict:
    """Where the numbers were measured: CPU, usable cores, OS, Python, library versions (None: not installed)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "machine": platform.machine(), "cores_logical": os.cpu_count(),
            "cores_usable": usable, "os": platform.platform(), "python": platform.python_version(),
            "libraries": library_versions()}
