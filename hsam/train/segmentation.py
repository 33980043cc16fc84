"""Slicer ``.seg.nrrd`` segmentations as class label images.

The file is read with SimpleITK; its segment table lives in the NRRD header (``Segment<i>_Name``,
``Segment<i>_LabelValue``, ``Segment<i>_Layer``). Overlapping segments are stored as several layers (vector
components); where segments overlap, the later segment wins. Slicer often crops a segmentation to the extent of its
segments, so a segmentation on the image's voxel lattice but with a smaller extent is padded onto the image grid;
any other grid is an error.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple, Union

import numpy as np
import SimpleITK as sitk

from .errors import TrainingError
from .labelmap import LabelMap


def is_segmentation_file(path: Union[str, Path]) -> bool:
    return str(path).lower().endswith(".seg.nrrd")


def segment_table(seg: sitk.Image) -> List[Tuple[str, int, int]]:
    """[(name, layer, label value)] in file order."""
    keys = set(seg.GetMetaDataKeys())
    table, i = [], 0
    while f"Segment{i}_ID" in keys or f"Segment{i}_Name" in keys:
        name = seg.GetMetaData(f"Segment{i}_Name") if f"Segment{i}_Name" in keys else f"Segment_{i}"
        layer = int(seg.GetMetaData(f"Segment{i}_Layer")) if f"Segment{i}_Layer" in keys else 0
        value = int(seg.GetMetaData(f"Segment{i}_LabelValue")) if f"Segment{i}_LabelValue" in keys else 1
        table.append((name, layer, value))
        i += 1
    return table


def read_segmentation(path: Union[str, Path], image: sitk.Image, label_map: LabelMap, case_name: str
                      ) -> sitk.Image:
    """The segmentation as a uint8 class image on ``image``'s grid."""
    try:
        seg = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise TrainingError(f"case {case_name}: {path} cannot be read ({str(exc).strip().splitlines()[-1][:200]})") \
            from None
    table = segment_table(seg)
    if not table:
        raise TrainingError(f"case {case_name}: {path} has no segment table; is it a Slicer .seg.nrrd file?")
    unmapped = [name for name, _, _ in table if label_map.class_of_segment(name) is None]
    if unmapped:
        raise TrainingError(f"case {case_name}: segments {', '.join(repr(n) for n in unmapped)} of {path} are not in "
                            f"the label map and match no class name ({', '.join(label_map.names[1:])}); map them "
                            "in the label map, to a class or to 'background'")
    layers = sitk.GetArrayFromImage(seg)
    if seg.GetNumberOfComponentsPerPixel() == 1:
        layers = layers[..., None]
    classes = np.zeros(layers.shape[:3], dtype=np.uint8)
    for name, layer, value in table:
        classes[layers[..., layer] == value] = label_map.class_of_segment(name)
    out = sitk.GetImageFromArray(classes)
    out.SetOrigin(seg.GetOrigin())
    out.SetSpacing(seg.GetSpacing())
    out.SetDirection(seg.GetDirection())
    return _onto_image_grid(out, image, case_name, path)


def _onto_image_grid(seg: sitk.Image, image: sitk.Image, case_name: str, path: Union[str, Path]) -> sitk.Image:
    same_axes = np.allclose(seg.GetSpacing(), image.GetSpacing(), rtol=1e-4) and \
        np.allclose(seg.GetDirection(), image.GetDirection(), atol=1e-4)
    offset = np.array(image.TransformPhysicalPointToContinuousIndex(seg.GetOrigin()))
    on_lattice = same_axes and np.allclose(offset, np.round(offset), atol=1e-3)
    if not on_lattice:
        raise TrainingError(f"case {case_name}: the segmentation grid of {path} differs from the image (spacing "
                            f"{seg.GetSpacing()} vs {image.GetSpacing()}, origin offset {offset.round(3).tolist()} "
                            "voxels); the segmentation must be drawn on the image's own voxel grid")
    if seg.GetSize() == image.GetSize() and not np.round(offset).any():
        seg.CopyInformation(image)
        return seg
    # Same lattice, smaller or shifted extent: place it onto the image grid (nearest, outside = background).
    return sitk.Resample(seg, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
