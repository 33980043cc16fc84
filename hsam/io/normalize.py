"""Intensity normalisation as a model card prescribes it; every model sees inputs in [0, 1].

The range that maps to [0, 1] is a property of the whole scan: a CT window is fixed, an MR scan's percentiles are
taken over all its voxels. Code that feeds a scan slice batch by slice batch takes the range once
(``intensity_range``) and scales each batch with it (``scale_to_unit``), so a slice is scaled alike whatever batch
it falls in, and as in training, where whole volumes are normalised.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import numpy as np

CT_DEFAULT_WINDOW = (-125.0, 275.0)
MR_DEFAULT_PERCENTILES = (0.5, 99.5)


def scale_to_unit(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to [lo, hi] and scale to [0, 1] (all zeros for an empty range)."""
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.float32)
    return ((np.clip(values, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def percentile_range(values: np.ndarray, percentiles: Sequence[float] = MR_DEFAULT_PERCENTILES
                     ) -> Tuple[float, float]:
    """MR: a robust min/max, percentiles of the non-zero voxels (zero is the padding outside the field of view)."""
    data = values[values != 0] if np.any(values != 0) else values
    lo, hi = np.percentile(data, percentiles)
    return float(lo), float(hi)


def ct_window(hu: np.ndarray, window: Sequence[float] = CT_DEFAULT_WINDOW) -> np.ndarray:
    """Clip to the window and scale to [0, 1] (the H-SAM / Synapse convention; no mean/std normalisation)."""
    return scale_to_unit(hu, *window)


def intensity_range(volume: np.ndarray, spec: Dict[str, Any]) -> Tuple[float, float]:
    """The intensities of ``volume`` (a whole scan) that the card's normalisation maps to 0 and 1."""
    kind = spec.get("kind")
    if kind == "ct_window":
        lo, hi = spec.get("window", CT_DEFAULT_WINDOW)
        return float(lo), float(hi)
    if kind == "percentiles":
        return percentile_range(volume, spec.get("percentiles", MR_DEFAULT_PERCENTILES))
    raise ValueError(f"unknown normalization {kind!r} in the model card")


def normalize(volume: np.ndarray, spec: Dict[str, Any]) -> np.ndarray:
    """A whole scan, normalised as the card says."""
    return scale_to_unit(volume, *intensity_range(volume, spec))
