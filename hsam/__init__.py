"""H-SAM engine of the HSAM 3D Slicer extension (torch, segment_anything; never Slicer or Qt)."""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["HSAM", "HSAMConfig", "CheckpointError", "ModelNotFoundError", "build_hsam", "load_model", "save_model",
           "__version__"]

# Imported on first use, so that ``hsam --help`` and the command line's start-up (where Ctrl-C must give exit
# code 3, not a traceback) do not wait for torch.
_LAZY = {"HSAM": ".network", "HSAMConfig": ".network", "CheckpointError": ".weights", "build_hsam": ".network",
         "ModelNotFoundError": ".models.catalog", "load_model": ".models", "save_model": ".models"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'hsam' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
