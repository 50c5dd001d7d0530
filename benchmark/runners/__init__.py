"""One interface for every runtime: ``open_runner(path)`` picks the runner from the file type.

Each runtime is one module registering a ``Runner`` subclass with ``@register``; ``list_runtimes()``
names them. Heavy runtime imports happen inside the runner, so importing this package stays light.
"""
from egeunet.benchmark.runners.base import RUNTIMES, Runner, list_runtimes, open_runner, register

__all__ = ["Runner", "RUNTIMES", "register", "list_runtimes", "open_runner"]
