"""Model-ready axial slices: (N, H, W) normalised slices -> (N, 3, S, S) batches."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .normalize import ct_window


def slices_to_batch(slices: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W) normalised slices -> (N, 3, size, size), bilinear resize, channel repeated."""
    t = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32))[:, None]
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t.expand(-1, 3, -1, -1).contiguous()


def middle_slice(path: str, size: int) -> torch.Tensor:
    import SimpleITK as sitk

    from .orientation import to_canonical
    from .volume import read_image

    array = sitk.GetArrayFromImage(to_canonical(read_image(path))[0])  # (k, j, i)
    return slices_to_batch(ct_window(array[array.shape[0] // 2][None]), size)
