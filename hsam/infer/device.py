"""Choosing where to run (``hsam segment``, ``evaluate``, ``benchmark`` and ``train``): auto / cpu / cuda / cuda:N /
mps, with messages instead of surprises."""
from __future__ import annotations

from typing import Callable, Optional

import torch


def choose_device(spec: str = "auto", log: Optional[Callable[[str], None]] = None,
                  auto_picks_mps: bool = True) -> torch.device:
    """The device ``--device spec`` names, for segmentation and training alike; ValueError (one line saying what
    to do) when it is not usable here. ``auto`` takes CUDA, else the Apple GPU if ``auto_picks_mps``, else the CPU
    (then ``log`` is told why it will be slow)."""
    spec = (spec or "auto").lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if auto_picks_mps and _mps_available():
            return torch.device("mps")
        if log:
            log("no GPU found: running on the CPU (slower; a GPU makes segmentation many times faster)")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec}: no CUDA GPU is available here; use --device cpu or auto")
        index = int(spec.split(":", 1)[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {spec}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
        return torch.device("cuda", index)
    if spec == "mps":
        if not _mps_available():
            raise ValueError("device mps: Apple GPU not available; use --device cpu or auto")
        return torch.device("mps")
    raise ValueError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def is_out_of_memory(exc: BaseException) -> bool:
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or "out of memory" in str(exc).lower()
