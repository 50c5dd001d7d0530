"""Option checks every command runs first, so bad values fail in one line before any work is done."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from egeunet.atomic import check_name
from egeunet.errors import EGEUNetError

MAX_SIZE = 2048  # a 2048 x 2048 input already needs several GB of activations; larger is a typo


def positive(option: str, value: int | None) -> None:
    """Reject a count below 1 (None means "not given" and passes)."""
    if value is not None and value < 1:
        raise EGEUNetError(f"{option} must be at least 1, got {value}")


def non_negative(option: str, value: int | None) -> None:
    """Reject a count below 0 (None passes)."""
    if value is not None and value < 0:
        raise EGEUNetError(f"{option} must be 0 or more, got {value}")


def size(option: str, value: int | None) -> None:
    """Reject an input size that is not a multiple of 32 in [32, MAX_SIZE] (None passes)."""
    from egeunet.model.network import SIZE_MULTIPLE

    if value is None:
        return
    if not SIZE_MULTIPLE <= value <= MAX_SIZE:
        raise EGEUNetError(f"{option}: size {value} is out of range: sizes are multiples of {SIZE_MULTIPLE} from "
                           f"{SIZE_MULTIPLE} to {MAX_SIZE} pixels (the paper uses 256)")
    if value % SIZE_MULTIPLE:
        fix = round(value / SIZE_MULTIPLE) * SIZE_MULTIPLE
        raise EGEUNetError(f"{option}: size {value} is not a multiple of {SIZE_MULTIPLE}: use {fix}")


def output_dir(option: str, path: str | os.PathLike) -> None:
    """Check that ``path`` is a folder this process can write into, or can be created, without creating it.

    Probes by creating (and removing) a hidden temporary folder in ``path`` or its nearest existing
    parent: permission bits alone do not tell (root, read-only mounts).
    """
    path = Path(path)
    if os.path.exists(path) and not os.path.isdir(path):  # os.path: False rather than an error on EACCES
        raise EGEUNetError(f"{option} {path}: is a file, not a folder; choose a folder path")
    probe = path
    while not os.path.exists(probe) and probe != probe.parent:
        probe = probe.parent
    if not os.path.isdir(probe):
        raise EGEUNetError(f"{option} {path}: {probe} is a file, so the folder cannot be created there; "
                           "choose another path")
    for missing in (path, *path.parents[: len(path.parts) - len(probe.parts) - 1]):
        check_name(missing, fix=f"choose a shorter {option}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".egeunet-probe-", dir=probe))
    except OSError as exc:
        where = "" if probe == path else f" (cannot create folders in {probe})"
        raise EGEUNetError(f"{option} {path}: not writable{where}: {exc.strerror}; choose a writable folder") from None


def cache_dir(value: str | None) -> None:
    """Check the decoded-image cache folder (``--cache-dir``, else ``$EGEUNET_CACHE``, else the default) like ``--out``."""
    from egeunet.data.cache import cache_setting

    folder, setting = cache_setting(value)
    output_dir(setting, folder)


def names(option: str, text: str, valid: tuple[str, ...] | list[str], what: str) -> list[str]:
    """A comma list of ``what`` names ("format"), any case, as lower-case names in order without repeats; one-line error
    naming the valid choices for an unknown or empty one (never silently dropped)."""
    given = [n.strip() for n in text.split(",")]
    if not all(given):
        raise EGEUNetError(f"{option} {text!r}: empty {what} name in the list; choose from {', '.join(valid)}")
    bad = [n for n in given if n.lower() not in valid]
    if bad:
        raise EGEUNetError(f"{option}: unknown {what} {bad[0]!r}; choose from {', '.join(valid)} (any case)")
    return list(dict.fromkeys(n.lower() for n in given))


def torch_threads(value: int | None) -> None:
    """Give PyTorch ``value`` CPU threads (``--threads`` of commands whose work is PyTorch's); None keeps its choice."""
    positive("--threads", value)
    if value is not None:
        import torch

        torch.set_num_threads(value)


def add_alias(parser, old: str, new: str, deprecated: bool = True, type=None) -> None:  # noqa: A002 - argparse's name
    """Add ``old`` as a hidden option storing into ``new``'s destination (with ``new``'s ``type``); a deprecated one
    warns, naming ``new``."""
    import argparse
    import warnings

    class Alias(argparse._StoreAction):
        def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001 - argparse's signature
            if deprecated:
                warnings.warn(f"{old} is deprecated: use {new}", FutureWarning, stacklevel=1)
            super().__call__(parser, namespace, values, option_string)

    parser.add_argument(old, dest=new.lstrip("-").replace("-", "_"), action=Alias, type=type, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS)


def one_runtime(text: str | None) -> str | None:
    """``--runtimes`` of a command that runs one model on one runtime: a single known name (any case), or None."""
    from egeunet.runtime.runners import list_runtimes

    if text is None:
        return None
    chosen = names("--runtimes", text, list_runtimes(), "runtime")
    if len(chosen) > 1:
        raise EGEUNetError(f"--runtimes {text!r}: this command runs on one runtime; give one of them "
                           "(`egeunet benchmark` compares several)")
    return chosen[0]
