"""Numeric precision: which autocast dtype a ``--precision`` asks for, and which one is running now.

"auto" means:
- on CUDA, bf16 autocast (fp16 where the GPU has no bf16), for segmentation and training alike;
- on a CPU that computes bf16 natively (the ``avx512_bf16`` or ``amx_bf16`` flag in /proc/cpuinfo), bf16 for
  segmentation (``inference_autocast_dtype``): with the inference rewrite, 2.5x faster end to end there, labels
  validated against float32 on the 12 BTCV cases (docs/inference.md). Training keeps float32 on every CPU
  (``requested_autocast_dtype``): its CPU recipes were tuned and measured in float32 and pass ``--precision``
  explicitly where they want another;
- float32 on any other CPU (where bf16 is emulated and slower than float32) and on other devices.
"""
from __future__ import annotations

from pathlib import Path
from typing import FrozenSet, Iterable, Optional, Union

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# x86 flags (as Linux names them in /proc/cpuinfo) of instructions that compute bf16 products natively.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
_EXPLICIT = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def requested_autocast_dtype(device: torch.device, precision: str) -> Optional[torch.dtype]:
    """Training's autocast dtype for ``--precision`` on ``device``; None means full fp32 (no autocast).
    "auto": bf16 (else fp16) on CUDA, fp32 elsewhere; bf16 on a CPU is opt-in."""
    if _check(precision) == "auto":
        return _cuda_auto() if device.type == "cuda" else None
    return _EXPLICIT[precision]


def inference_autocast_dtype(device: torch.device, precision: str,
                             cpu_flags: Optional[Iterable[str]] = None) -> Optional[torch.dtype]:
    """Segmentation's autocast dtype: as ``requested_autocast_dtype``, except that "auto" on a CPU is bf16 where
    the CPU computes it natively (``cpu_flags``: this machine's when None)."""
    if _check(precision) == "auto" and device.type == "cpu":
        return torch.bfloat16 if computes_bf16_natively(this_cpu_flags() if cpu_flags is None else cpu_flags) \
            else None
    return requested_autocast_dtype(device, precision)


def computes_bf16_natively(flags: Iterable[str]) -> bool:
    """Whether a CPU with these feature flags has bf16 dot-product instructions (AVX-512 BF16 or AMX)."""
    return not NATIVE_BF16_FLAGS.isdisjoint(flags)


def cpu_training_precision(cpu_flags: Optional[Iterable[str]] = None) -> str:
    """The ``--precision`` that a CPU recipe measured in bf16 should ask for on this CPU (``cpu_flags``: this
    machine's when None): "bf16" where it is computed natively, else "fp32", because emulated bf16 trains 2-5x
    slower than float32."""
    return "bf16" if computes_bf16_natively(this_cpu_flags() if cpu_flags is None else cpu_flags) else "fp32"


def this_cpu_flags(cpuinfo: Union[str, Path] = "/proc/cpuinfo") -> FrozenSet[str]:
    """The feature flags of this machine's first CPU as Linux lists them; empty where there is no such file
    (macOS, Windows), so "auto" stays float32 there."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def active_autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast is running with at this point for ``device_type`` ("cuda", "cpu", ...), or None
    when autocast is off there (tensors keep their own dtype)."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def _check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def _cuda_auto() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
