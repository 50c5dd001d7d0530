"""One interface for every runtime: ``open_runner(path, runtime=None)`` opens a file in a runtime that can run it.

Each runtime is one module registering a ``Runner`` subclass with ``@register``; ``list_runtimes()`` names them and
``runtimes_for(path)`` says which can run a file (the first is its default). Heavy runtime imports happen inside the
runner, so importing this package stays light.
"""
from egeunet.runtime.runners.base import (RUNTIMES, Runner, list_runtimes, open_runner, register, runtime_for,
                                          runtimes_for)

__all__ = ["Runner", "RUNTIMES", "register", "list_runtimes", "open_runner", "runtime_for", "runtimes_for"]
