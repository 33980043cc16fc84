"""Reading volumes with SimpleITK: files (NIfTI, NRRD, MHA, ...) or DICOM series folders, with clear errors."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import SimpleITK as sitk

from .data_size import check_data_size
from .dicom import read_dicom_series
from .errors import TruncatedError, VolumeError

__all__ = ["VolumeError", "TruncatedError", "read_image", "check_scalar_3d"]


def read_image(path: Union[str, Path]) -> sitk.Image:
    """A scalar 3D image from a file or a DICOM series folder."""
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file or folder")
    if path.is_dir():
        image = read_dicom_series(path)
    else:
        check_data_size(path)
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
            raise VolumeError(f"{path}: cannot be read as an image ({first[:200]}); give a complete NIfTI, NRRD, "
                              "MHA file or a DICOM series folder") from None
    return check_scalar_3d(image, path)


def check_scalar_3d(image: sitk.Image, source: Union[str, Path]) -> sitk.Image:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeError(f"{source}: has {image.GetNumberOfComponentsPerPixel()} components per voxel (color or "
                          "vector image); give a single-channel CT/MR volume")
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise VolumeError(f"{source}: is a {image.GetDimension()}D image; a 3D volume is needed "
                          "(for a time series, export one time point)")
    if min(image.GetSize()) < 2:
        raise VolumeError(f"{source}: a single slice ({image.GetSize()}); a 3D volume is needed")
    return image
