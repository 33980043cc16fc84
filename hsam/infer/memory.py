"""Handing a finished volume's memory back to the system.

The ``hsam`` commands keep freed memory in the process (hsam/allocator.py), so a forward pass reuses its layers'
buffers instead of taking fresh pages for every slice. After a volume, though, its freed input, labels and reader
buffers (several times the volume's size) would stay counted in the process's resident memory until it ends; a
next volume reuses them, but anything else the process touches later (the next reader's copy, or the ~120 MB of
library pages that interpreter shutdown touches) comes on top. Returning free heap pages once per volume costs a
few milliseconds.
"""
from __future__ import annotations

import ctypes

from ..allocator import glibc_function


def return_freed_memory() -> bool:
    """glibc's ``malloc_trim(0)``: free pages of the heap go back to the system. False where there is no glibc."""
    trim = glibc_function("malloc_trim", [ctypes.c_size_t])
    return trim is not None and bool(trim(0))
