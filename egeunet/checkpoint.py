"""Save and load models: this package's self-describing checkpoints and the authors' files.

Everything is read with ``torch.load(weights_only=True)``: a checkpoint can hold tensors, numbers,
strings, lists and dicts, never code.
"""
from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from egeunet.atomic import atomic_write
from egeunet.errors import EGEUNetError
from egeunet.model import EGEUNet, EGEUNetConfig
from egeunet.model.official import from_official, is_official_state_dict, official_channels
from egeunet.preprocess import PREPROCESSING

FORMAT = "egeunet-checkpoint"
FORMAT_VERSION = 1


def checkpoint_dict(model: EGEUNet, input_size: int = 256, **extra: Any) -> dict:
    """The documented egeunet checkpoint: weights plus everything needed to rebuild and deploy them.

    ``extra`` holds optional sections such as ``training`` (settings), ``metrics`` and ``epoch``.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "input_size": int(input_size),
        "preprocessing": dict(PREPROCESSING),
        "state_dict": state,
        **extra,
    }


def save_checkpoint(path: str | Path, model: EGEUNet, input_size: int = 256, **extra: Any) -> None:
    """Write ``checkpoint_dict(model, ...)`` atomically."""
    ckpt = checkpoint_dict(model, input_size, **extra)
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint file safely, turning every failure into one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise EGEUNetError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # a corrupt header also warns about its "pickle protocol"
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"(Unsupported global|unsupported GLOBAL)[: ]+(GLOBAL )?([\w.]+)", text)
        if found:
            raise EGEUNetError(f"{path}: refused to load: the file holds Python code or objects, not just "
                               f"tensors ({found.group(3)}); egeunet loads weights only") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        hint = detail.group(1).strip() if detail else text.strip().splitlines()[0][:120]
        raise EGEUNetError(f"{path}: not a PyTorch checkpoint (corrupt or another file type: {hint})") from None
    except Exception as exc:  # noqa: BLE001 - random bytes break the unpickler in many ways (IndexError, struct.error)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "truncated or corrupt" if path.stat().st_size else "empty file"
        raise EGEUNetError(f"{path}: not a readable PyTorch checkpoint ({hint}: {msg[:120]})") from None
    if not isinstance(obj, dict):
        raise EGEUNetError(f"{path}: not a checkpoint (holds a {type(obj).__name__}, expected a dict of tensors)")
    return obj


def _describe_mismatch(path: Path, model: EGEUNet, state: dict) -> str | None:
    """One line listing the first missing/unexpected/mis-shaped keys, or None when they match."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]

    def first(keys: list[str], what: str) -> str:
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        return f"{what} {', '.join(keys[:3])}{more}"

    parts = [first(keys, what) for keys, what in ((missing, "missing keys"), (unexpected, "unexpected keys"),
                                                  (shapes, "shape mismatch in")) if keys]
    if not parts:
        return None
    return f"{path}: state dict does not match EGE-UNet {model.config.channels}: " + "; ".join(parts)


def model_from_checkpoint(obj: dict, path: str | Path = "<checkpoint>") -> tuple[EGEUNet, dict]:
    """Build the model from any supported checkpoint dict; returns (model, metadata)."""
    path = Path(path)
    meta: dict = {"source": "egeunet"}
    own = obj.get("format") == FORMAT
    state = obj.get("state_dict") if own else obj.get("model_state_dict", obj)  # the authors' latest.pth nests it
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = ", ".join(list(map(str, obj))[:5])
        raise EGEUNetError(f"{path}: not an EGE-UNet checkpoint (no state dict of tensors; top-level keys: {keys})")
    if own:
        try:
            config = EGEUNetConfig.from_dict(obj["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EGEUNetError(f"{path}: bad architecture options in checkpoint ({exc})") from None
        meta.update({k: v for k, v in obj.items() if k != "state_dict"})
    else:
        config = EGEUNetConfig()
        if is_official_state_dict(state):
            meta["source"] = "authors' release"
            config = EGEUNetConfig(channels=official_channels(state) or config.channels)
            state = from_official(state)
        if "epoch" in obj:
            meta["epoch"] = obj["epoch"]
    model = EGEUNet(config)
    problem = _describe_mismatch(path, model, state)
    if problem:
        raise EGEUNetError(problem)
    model.load_state_dict(state)
    meta.setdefault("input_size", 256)
    return model.eval(), meta


def load_model(path: str | Path, with_meta: bool = False) -> EGEUNet | tuple[EGEUNet, dict]:
    """Load an EGE-UNet in eval mode from an egeunet checkpoint or the authors' best/latest.pth.

    ``model(x)`` then maps float N x 3 x H x W in [0, 255] to foreground probabilities N x 1 x H x W.
    With ``with_meta=True`` also returns the checkpoint's metadata (input size, training, metrics).
    """
    model, meta = model_from_checkpoint(read_checkpoint(path), path)
    return (model, meta) if with_meta else model
