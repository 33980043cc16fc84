"""Canonical orientation: permute and flip a volume's axes so slices are what the model was trained on, then undo
it exactly.

Codes are SimpleITK/ITK orientation codes: "LPS" means index i increases toward patient Left, j toward Posterior,
k toward Superior (an identity direction matrix), the layout of the btcv_synapse training data. Reorientation is a
pure permutation/flip of voxels (SimpleITK's DICOMOrient picks the closest axes for oblique volumes), so no
intensity is resampled and undoing it restores the input grid voxel for voxel.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import SimpleITK as sitk

_ORIENT = sitk.DICOMOrientImageFilter


def orientation_code(image: sitk.Image) -> str:
    return _ORIENT.GetOrientationFromDirectionCosines(image.GetDirection())


def to_canonical(image: sitk.Image, code: str = "LPS") -> Tuple[sitk.Image, str]:
    """(image with axes permuted/flipped toward ``code``, the input's own code for ``from_canonical``)."""
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D volume, got a {image.GetDimension()}D image")
    original = orientation_code(image)
    return (image if original == code else sitk.DICOMOrient(image, code)), original


def from_canonical(result: sitk.Image, reference: sitk.Image, original_code: str) -> sitk.Image:
    """Bring a result computed on the canonical grid back onto ``reference``'s exact grid."""
    back = result if orientation_code(result) == original_code else sitk.DICOMOrient(result, original_code)
    if back.GetSize() != reference.GetSize():
        raise ValueError(f"result size {back.GetSize()} does not match the input {reference.GetSize()}")
    if not np.allclose(back.GetDirection(), reference.GetDirection(), atol=1e-4) or \
            not np.allclose(back.GetOrigin(), reference.GetOrigin(), atol=1e-3 * max(reference.GetSpacing())):
        raise ValueError("reorientation did not return to the input geometry")
    # Permutations are exact; copying the reference's information removes floating-point noise in the header.
    back.CopyInformation(reference)
    return back
