"""Numeric precision: which autocast dtype a ``--precision`` asks for, and which one is running now.

Segmentation and training share the same choices and the same "auto" rule, so a model trained with
``--precision auto`` is segmented the way it was validated.
"""
from __future__ import annotations

from typing import Optional

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def requested_autocast_dtype(device: torch.device, precision: str) -> Optional[torch.dtype]:
    """The autocast dtype for ``--precision`` on ``device``; None means full fp32 (no autocast).
    "auto": bf16 (else fp16) on CUDA, fp32 elsewhere; bf16 on a CPU is opt-in."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def active_autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast is running with at this point for ``device_type`` ("cuda", "cpu", ...), or None
    when autocast is off there (tensors keep their own dtype)."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
