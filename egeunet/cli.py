"""`egeunet` command line: a thin layer over the library, one module per command in egeunet.commands."""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings
from collections.abc import Callable

from egeunet.errors import EGEUNetError

# Each name is a module in egeunet/commands exposing `HELP`, `add_arguments(parser)` and `run(args) -> int`.
COMMANDS = (
    "info",
    "sample_data",
    "train",
    "finetune_int8",
    "evaluate",
    "predict",
    "export",
    "benchmark",
    "demo",
)


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that shows each option's default: "(default: X)" after a help text that does not already name it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.default in (None, False, argparse.SUPPRESS) or "default" in text
                or text == argparse.SUPPRESS):
            return text
        return f"{text} (default: {action.default})"


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every command that is installed."""
    from egeunet import __version__

    parser = argparse.ArgumentParser(
        prog="egeunet",
        description="EGE-UNet skin-lesion segmentation: train, evaluate, export and benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"egeunet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors, and third-party "
                        "converters' output (progress bars, warnings) as it comes instead of holding it back")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"egeunet.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"egeunet.commands.{name}":
                continue  # command not built yet
            raise
        cmd = sub.add_parser(name.replace("_", "-"), help=module.HELP, description=module.HELP,
                             formatter_class=DefaultsFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def _one_line_format(command: str) -> Callable[..., str]:
    """A ``warnings.formatwarning``: `egeunet CMD: warning: message`, one line, without Python's file and source line.

    Only the format changes (not ``showwarning``), so filters and recorders such as pytest.warns still work.
    """

    def one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 line: str | None = None) -> str:
        kind = "" if category is UserWarning else f" ({category.__name__})"
        return f"egeunet {command}: warning{kind}: {' '.join(str(message).split())}\n"

    return one_line


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``docker stop``, a CI cancel) raised as an interrupt, so every cleanup runs as on Ctrl-C:
    child processes are killed, temporary folders removed, manifests left true."""


def _terminate(signum: int, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `egeunet` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    if args.debug:  # egeunet.quiet holds nothing back; child processes inherit it
        from egeunet.quiet import DEBUG_ENV

        os.environ[DEBUG_ENV] = "1"
    previous, warnings.formatwarning = warnings.formatwarning, _one_line_format(args.command)
    previous_term = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args)
    finally:
        warnings.formatwarning = previous
        signal.signal(signal.SIGTERM, previous_term)


def _run(args: argparse.Namespace) -> int:
    """Run the command; its errors become one line on stderr and an exit status (tracebacks only with --debug)."""
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except (EGEUNetError, OSError) as exc:
        if args.debug:
            raise
        print(f"egeunet {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"egeunet {args.command}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130


def _message(exc: EGEUNetError | OSError) -> str:
    """One line for the user: EGEUNetError's text, or an OSError's file and reason (disk full, permission, ...)."""
    if isinstance(exc, EGEUNetError) or not exc.strerror:
        return str(exc)
    names = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    return f"{names}: {exc.strerror}" if names else exc.strerror


if __name__ == "__main__":
    sys.exit(main())
