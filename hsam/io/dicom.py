"""Reading one DICOM series folder, refusing a series with missing, unreadable or unevenly spaced slices.

GDCM leaves out a file it cannot parse (a truncated copy, say) and ITK then stacks the remaining slices with a
warning only, as if they were evenly spaced: the volume is silently shorter or stretched. Here that is an error."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import SimpleITK as sitk

from .errors import TruncatedError, VolumeError

# Relative spread of slice gaps accepted as rounding in the stored positions; a missing slice doubles one gap.
GAP_TOLERANCE = 0.01


def read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder)) or []
    if not series:
        raise VolumeError(f"{folder}: no DICOM series found in this folder")
    if len(series) > 1:
        raise VolumeError(f"{folder}: holds {len(series)} DICOM series; put one series per folder")
    files = list(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    _check_left_out_files(folder, files)
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    warnings = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # the uneven-spacing warning becomes an error below
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise VolumeError(f"{folder}: the DICOM series cannot be read ({str(exc).strip().splitlines()[-1][:200]})") \
            from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings)
    _check_even_spacing(folder, reader, image, files)
    return image


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _check_left_out_files(folder: Path, files: List[str]) -> None:
    """A DICOM file GDCM left out of the series must at least be readable on its own (a report or a localizer
    is); one that is not is a damaged slice."""
    used = {Path(f).resolve() for f in files}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.resolve() in used or not _is_dicom_file(path):
            continue
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            raise TruncatedError(f"{path}: this DICOM file cannot be read (truncated or damaged), so the series in "
                                 f"{folder} would miss a slice; copy or export the series again") from None


def _check_even_spacing(folder: Path, reader: sitk.ImageSeriesReader, image: sitk.Image, files: List[str]) -> None:
    if len(files) < 3:
        return
    normal = np.array(image.GetDirection()).reshape(3, 3)[:, 2]
    try:
        positions = [float(np.dot(normal, [float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")]))
                     for i in range(len(files))]
    except (RuntimeError, ValueError):
        return  # no Image Position (Patient) on every slice: nothing to compare
    gaps = np.diff(positions)
    typical = float(np.median(np.abs(gaps)))
    worst = int(np.argmax(np.abs(np.abs(gaps) - typical)))
    if typical == 0 or abs(abs(gaps[worst]) - typical) > GAP_TOLERANCE * typical + 1e-4:
        raise VolumeError(
            f"{folder}: slices are not evenly spaced (gap of {abs(gaps[worst]):.3g} mm between "
            f"{Path(files[worst]).name} and {Path(files[worst + 1]).name}, typical {typical:.3g} mm): a slice is "
            "missing or duplicated, or the series has varying spacing; export the complete series, or resample it "
            "to even spacing and save it as NIfTI/NRRD")
