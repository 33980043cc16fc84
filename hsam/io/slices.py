"""Minimal volume-to-slice helpers: read a CT, window it, and make model-ready axial slices."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def ct_window(hu: np.ndarray, window: Sequence[float] = (-125.0, 275.0)) -> np.ndarray:
    """Clip to the window and scale to [0, 1] (the H-SAM / Synapse convention; no mean/std normalisation)."""
    lo, hi = window
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def slices_to_batch(slices: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W) normalised slices -> (N, 3, size, size), bilinear resize, channel repeated."""
    t = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32))[:, None]
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t.expand(-1, 3, -1, -1).contiguous()


def middle_slice(path: str, size: int) -> torch.Tensor:
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))  # (k, j, i)
    if array.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume, got {array.ndim} dimensions")
    return slices_to_batch(ct_window(array[array.shape[0] // 2][None]), size)
