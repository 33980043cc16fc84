"""Reading volumes with SimpleITK: files (NIfTI, NRRD, MHA, ...) or DICOM series folders, with clear errors."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import SimpleITK as sitk


class VolumeError(ValueError):
    """An input volume cannot be used; the message says what to do."""


def read_image(path: Union[str, Path]) -> sitk.Image:
    """A scalar 3D image from a file or a DICOM series folder."""
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file or folder")
    if path.is_dir():
        image = _read_dicom_series(path)
    else:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
            raise VolumeError(f"{path}: cannot be read as an image ({first[:200]}); give a NIfTI, NRRD, MHA file or "
                              "a DICOM series folder") from None
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


def _read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder)) or []
    if not series:
        raise VolumeError(f"{folder}: no DICOM series found in this folder")
    if len(series) > 1:
        raise VolumeError(f"{folder}: holds {len(series)} DICOM series; put one series per folder")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise VolumeError(f"{folder}: the DICOM series cannot be read ({str(exc).strip().splitlines()[-1][:200]})") \
            from None
