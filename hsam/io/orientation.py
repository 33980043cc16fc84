"""Canonical orientation: permute and flip a volume's axes so slices are what the model was trained on, then undo
it exactly.

Codes are SimpleITK/ITK orientation codes: "LPS" means index i increases toward patient Left, j toward Posterior,
k toward Superior (an identity direction matrix), the layout of the btcv_synapse training data. Reorientation is a
pure permutation/flip of voxels (SimpleITK's DICOMOrient picks the closest axes for oblique volumes), so no
intensity is resampled and undoing it restores the input grid voxel for voxel.
"""
from __future__ import annotations

from typing import NamedTuple, Tuple, Union

import numpy as np
import SimpleITK as sitk

_ORIENT = sitk.DICOMOrientImageFilter


class Grid(NamedTuple):
    """An image's voxel grid without its voxels: what a result needs to be put back on it."""

    size: Tuple[int, ...]
    spacing: Tuple[float, ...]
    origin: Tuple[float, ...]
    direction: Tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> "Grid":
        return cls(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    def apply_to(self, image: sitk.Image) -> None:
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)


def orientation_code(image: sitk.Image) -> str:
    return _ORIENT.GetOrientationFromDirectionCosines(image.GetDirection())


def to_canonical(image: sitk.Image, code: str = "LPS") -> Tuple[sitk.Image, str]:
    """(image with axes permuted/flipped toward ``code``, the input's own code for ``from_canonical``)."""
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D volume, got a {image.GetDimension()}D image")
    original = orientation_code(image)
    return (image if original == code else sitk.DICOMOrient(image, code)), original


def from_canonical(result: sitk.Image, reference: Union[sitk.Image, Grid], original_code: str) -> sitk.Image:
    """Bring a result computed on the canonical grid back onto ``reference``'s exact grid (an image, or the
    ``Grid`` of one whose voxels are no longer needed)."""
    grid = reference if isinstance(reference, Grid) else Grid.of(reference)
    back = result if orientation_code(result) == original_code else sitk.DICOMOrient(result, original_code)
    if back.GetSize() != grid.size:
        raise ValueError(f"result size {back.GetSize()} does not match the input {grid.size}")
    if not np.allclose(back.GetDirection(), grid.direction, atol=1e-4) or \
            not np.allclose(back.GetOrigin(), grid.origin, atol=1e-3 * max(grid.spacing)):
        raise ValueError("reorientation did not return to the input geometry")
    # Permutations are exact; taking the reference's information removes floating-point noise in the header.
    grid.apply_to(back)
    return back
