"""Put a reference label map on the prediction's grid in physical space before any voxel is compared.

Two files can hold arrays of the same size yet describe different places (a flipped axis, another origin), or
arrays of different sizes over the same place (another resolution or crop). Pairing voxels by index then scores
the wrong anatomy without any error, so the reference is resampled onto the prediction's grid (nearest neighbour,
which keeps label values exact) whenever the grids differ, and refused when the two do not overlap at all.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from ..io.volume import VolumeError


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def grid_differences(moving: sitk.Image, fixed: sitk.Image) -> List[str]:
    """What differs between two grids, in words; empty when they are the same grid (up to header rounding)."""
    diffs = []
    if moving.GetSize() != fixed.GetSize():
        diffs.append(f"size {moving.GetSize()} vs {fixed.GetSize()}")
    if not np.allclose(moving.GetSpacing(), fixed.GetSpacing(), rtol=1e-4, atol=1e-6):
        diffs.append(f"spacing {_fmt(moving.GetSpacing())} vs {_fmt(fixed.GetSpacing())} mm")
    # Origins agree to a thousandth of a voxel: NIfTI and NRRD headers round them differently.
    if not np.allclose(moving.GetOrigin(), fixed.GetOrigin(), rtol=0, atol=1e-3 * min(fixed.GetSpacing())):
        diffs.append(f"origin {_fmt(moving.GetOrigin())} vs {_fmt(fixed.GetOrigin())} mm")
    if not np.allclose(moving.GetDirection(), fixed.GetDirection(), rtol=0, atol=1e-4):
        diffs.append(f"direction {_fmt(moving.GetDirection())} vs {_fmt(fixed.GetDirection())}")
    return diffs


def _inside(moving: sitk.Image, fixed: sitk.Image) -> np.ndarray:
    """The (k, j, i) mask of ``fixed``'s voxel centres that fall inside ``moving``'s voxels (half a voxel beyond
    the first and last centre), computed slice by slice from the two index-to-physical maps."""
    def matrix(image: sitk.Image) -> np.ndarray:
        return np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())

    to_moving = np.linalg.solve(matrix(moving), matrix(fixed))  # fixed index -> moving continuous index
    offset = np.linalg.solve(matrix(moving), np.subtract(fixed.GetOrigin(), moving.GetOrigin()))
    size, limit = fixed.GetSize(), np.array(moving.GetSize()) - 0.5 + 1e-3
    j, i = np.mgrid[0:size[1], 0:size[0]]
    mask = np.ones((size[2], size[1], size[0]), bool)
    for k in range(size[2]):
        for axis in range(3):
            c = to_moving[axis, 0] * i + to_moving[axis, 1] * j + (to_moving[axis, 2] * k + offset[axis])
            mask[k] &= (c >= -0.5 - 1e-3) & (c <= limit[axis])
    return mask


def align_reference(reference: sitk.Image, prediction: sitk.Image, source: str,
                    log: Optional[Callable[[str], None]] = None) -> Tuple[sitk.Image, Optional[np.ndarray]]:
    """(``reference`` on exactly ``prediction``'s grid, the (k, j, i) mask of prediction voxels the reference
    covers or None when it covers all). The reference is itself when the grids match, else resampled (nearest
    neighbour) when the two overlap; a VolumeError names the difference when they do not overlap."""
    diffs = grid_differences(reference, prediction)
    if not diffs:
        return reference, None
    inside = _inside(reference, prediction)
    covered = float(inside.mean())
    if covered == 0.0:
        raise VolumeError(f"{source}: the reference labels and the prediction do not overlap in space ("
                          f"{'; '.join(diffs)}; reference vs prediction): they are not of the same scan, or one "
                          "header is wrong; give the labels made on this image")
    # Padding by the edge values first keeps points on the reference's outer half-voxel from reading the
    # resampler's default through rounding; points truly outside are set to background just below.
    padded = sitk.ZeroFluxNeumannPad(reference, [1, 1, 1], [1, 1, 1])
    resampled = sitk.Resample(padded, prediction, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                              reference.GetPixelID())
    if covered < 1.0:
        array = sitk.GetArrayFromImage(resampled)
        array[~inside] = 0
        outside_zeroed = sitk.GetImageFromArray(array)
        outside_zeroed.CopyInformation(prediction)
        resampled = outside_zeroed
    message = (f"{source}: the reference's grid differs from the prediction's ({'; '.join(diffs)}; reference vs "
               "prediction); resampled the reference onto the prediction's grid in physical space (nearest "
               "neighbour)")
    if covered < 1.0:
        message += (f"; it covers {100 * covered:.1f}% of the prediction's volume, and only that part is scored")
    if log is not None:
        log(message)
    return resampled, (inside if covered < 1.0 else None)
