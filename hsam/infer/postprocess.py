"""Per-organ clean-up: keep each organ's largest connected component (SimpleITK), dropping stray islands."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import SimpleITK as sitk


def keep_largest_components(labels: np.ndarray, classes: Iterable[int]) -> np.ndarray:
    """labels (k, j, i) uint8 -> same with only the largest 3D component of each class kept (others -> 0)."""
    out = labels.copy()
    for value in classes:
        mask = labels == value
        if not mask.any():
            continue
        components = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)
        ranked = sitk.GetArrayFromImage(sitk.RelabelComponent(components, sortByObjectSize=True))
        out[mask & (ranked != 1)] = 0
    return out
