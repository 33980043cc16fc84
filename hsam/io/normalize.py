"""Intensity normalisation as a model card prescribes it; every model sees inputs in [0, 1]."""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np


def ct_window(hu: np.ndarray, window: Sequence[float] = (-125.0, 275.0)) -> np.ndarray:
    """Clip to the window and scale to [0, 1] (the H-SAM / Synapse convention; no mean/std normalisation)."""
    lo, hi = window
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def percentile_scale(values: np.ndarray, percentiles: Sequence[float] = (0.5, 99.5)) -> np.ndarray:
    """MR: robust min/max from percentiles of the non-zero voxels, then scale to [0, 1]."""
    data = values[values != 0] if np.any(values != 0) else values
    lo, hi = np.percentile(data, percentiles)
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.float32)
    return ((np.clip(values, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def normalize(volume: np.ndarray, spec: Dict[str, Any]) -> np.ndarray:
    kind = spec.get("kind")
    if kind == "ct_window":
        return ct_window(volume, spec.get("window", (-125.0, 275.0)))
    if kind == "percentiles":
        return percentile_scale(volume, spec.get("percentiles", (0.5, 99.5)))
    raise ValueError(f"unknown normalization {kind!r} in the model card")
