"""The one exception type the CLI turns into a one-line message (no traceback without --debug)."""


class EGEUNetError(Exception):
    """A user-facing problem: bad input file, wrong option, failed gate. The message is one line."""
