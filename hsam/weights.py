"""Reading weight files safely, with one-line errors that name the file and the mismatch."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Union

import torch
import torch.nn as nn

PathLike = Union[str, Path]


class CheckpointError(ValueError):
    """A weight file is missing, unreadable, or does not fit the model."""


def sha256_of(path: PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: PathLike, expected: Optional[str]) -> None:
    if expected and sha256_of(path) != expected.lower():
        raise CheckpointError(f"{path}: sha256 does not match the expected {expected[:12]}…; the file is damaged or "
                              "a different version: delete it and download it again")


def torch_load_plain(path: Path, *, error: Callable[[str], Exception], unreadable: str, refused: str) -> Any:
    """``torch.load(weights_only=True)``: plain tensors and containers only, so a pickle that would run code is
    refused. A truncated or corrupt file raises ``error(unreadable)``, a refused one ``error(refused)``; ``{reason}``
    in either message becomes the short cause."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise error(unreadable.replace("{reason}", reason)) from None
    except Exception as exc:  # pickle errors from weights_only
        raise error(refused.replace("{reason}", type(exc).__name__)) from None


def load_torch_state(path: PathLike) -> Dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` of a checkpoint, unwrapping {'model': ...} / {'state_dict': ...}."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    obj = torch_load_plain(path, error=CheckpointError,
                           unreadable=f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {{reason}}",
                           refused=f"{path}: refused to load ({{reason}}); only plain tensor checkpoints are accepted")
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not contain a state dict of tensors")
    return obj


def load_safetensors(path: PathLike) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): "
                              f"{str(exc).splitlines()[0]}") from None


def describe_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """None when ``state`` has exactly the keys and shapes of ``expected``, else a short description."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} shape mismatches (e.g. {k}: file {tuple(state[k].shape)} vs model "
                     f"{tuple(expected[k].shape)})")
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    return "; ".join(parts) or None


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: PathLike, what: str) -> None:
    problem = describe_mismatch(module.state_dict(), state)
    if problem:
        raise CheckpointError(f"{source}: does not fit the {what}: {problem}")
    module.load_state_dict(state, strict=True)
