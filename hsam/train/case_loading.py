"""Loading training cases: read, check, map labels to classes, reorient and normalise exactly as inference does.

Every case is checked before any training starts and all problems are reported together: unreadable files, a
label grid that differs from its image, label values or segments missing from the label map, non-integer labels,
and cases without any foreground.

A label file is a label image (its values go through the label map) or a Slicer ``.seg.nrrd`` segmentation, read
with SimpleITK: its segment table lives in the NRRD header (``Segment<i>_Name``, ``Segment<i>_LabelValue``,
``Segment<i>_Layer``). Overlapping segments are stored as several layers (vector components); where segments
overlap, the later segment wins. Slicer often crops a segmentation to the extent of its segments, so a segmentation
on the image's voxel lattice but with a smaller extent is padded onto the image grid; any other grid is an error.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from ..io.normalize import normalize
from ..io.slice_field import field_padding
from ..io.orientation import to_canonical
from ..io.volume import VolumeError, read_image
from ..models.label_map import LabelMap
from .case_manifest import Case
from .errors import TrainingError


@dataclass
class CaseVolume:
    name: str
    image: np.ndarray  # (K, H, W) float32, normalised per the model card, canonical orientation
    label: np.ndarray  # (K, H, W) uint8 model class values

    def class_counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(self.label.ravel(), minlength=num_classes)[:num_classes]


def load_cases(cases: Sequence[Case], label_map: LabelMap, normalization: Dict[str, Any],
               orientation: str, slice_field: str) -> List[CaseVolume]:
    volumes, problems = [], []
    for case in cases:
        try:
            volumes.append(load_case(case, label_map, normalization, orientation, slice_field))
        except (TrainingError, VolumeError) as exc:
            problems.append(str(exc))
    if problems:
        raise TrainingError(f"{len(problems)} of {len(cases)} cases cannot be used: " + "; ".join(problems))
    return volumes


def load_case(case: Case, label_map: LabelMap, normalization: Dict[str, Any], orientation: str,
              slice_field: str) -> CaseVolume:
    image = read_image(case.image)
    if is_segmentation_file(case.label):
        label = read_segmentation(case.label, image, label_map, case.name)
    else:
        label = _map_label_values(read_image(case.label), label_map, case)
        check_same_grid(image, label, case)
    image_c, _ = to_canonical(image, orientation)
    label_c, _ = to_canonical(label, orientation)
    classes = sitk.GetArrayFromImage(label_c).astype(np.uint8)
    if not classes.any():
        raise TrainingError(f"case {case.name}: no foreground voxels in {case.label} after label mapping; there is "
                            "nothing to learn from it: check the label map or leave the case out")
    values = normalize(sitk.GetArrayFromImage(image_c).astype(np.float32), normalization)
    if not np.isfinite(values).all():  # NaN voxels, or a normalisation a constant image turns into 0/0
        raise TrainingError(f"case {case.name}: {case.image} gives NaN or infinite intensities (NaN voxels in the "
                            "file, or an image of one value); fix or re-export it, or leave the case out")
    # Slices meet the model as in hsam segment: padded to a square field in mm with the normalised value 0.
    padding = field_padding(values.shape[1:], image_c.GetSpacing()[:2], slice_field)
    return CaseVolume(case.name, padding.pad(values), padding.pad(classes))


def check_same_grid(image: sitk.Image, label: sitk.Image, case: Case) -> None:
    differences = []
    if image.GetSize() != label.GetSize():
        differences.append(f"size {label.GetSize()} vs {image.GetSize()}")
    else:
        if not np.allclose(image.GetSpacing(), label.GetSpacing(), rtol=1e-4):
            differences.append(f"spacing {_fmt(label.GetSpacing())} vs {_fmt(image.GetSpacing())}")
        if not np.allclose(image.GetOrigin(), label.GetOrigin(), atol=1e-3 * max(image.GetSpacing())):
            differences.append(f"origin {_fmt(label.GetOrigin())} vs {_fmt(image.GetOrigin())}")
        if not np.allclose(image.GetDirection(), label.GetDirection(), atol=1e-4):
            differences.append("direction")
    if differences:
        raise TrainingError(f"case {case.name}: the label grid differs from the image ({', '.join(differences)}); "
                            "the label must be drawn on the image's own voxel grid")


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _map_label_values(label: sitk.Image, label_map: LabelMap, case: Case) -> sitk.Image:
    array = sitk.GetArrayFromImage(label)
    if array.dtype.kind == "f":
        if not np.array_equal(array, np.round(array)):
            raise TrainingError(f"case {case.name}: {case.label} holds non-integer values; a label map needs whole "
                                "numbers (was it resampled with linear interpolation?)")
    values, counts = np.unique(array.astype(np.int64), return_counts=True)
    lut, missing = {}, []
    for value, count in zip(values.tolist(), counts.tolist()):
        target = label_map.class_of_value(value)
        if target is None:
            missing.append(f"{value} ({count} voxels)")
        else:
            lut[value] = target
    if missing:
        hint = (f"add them to the label map {label_map.source}" if label_map.by_value is not None else
                f"the model has classes 0..{label_map.num_classes - 1}; give --label-map to map them")
        raise TrainingError(f"case {case.name}: label values {', '.join(missing)} in {case.label} are not in the "
                            f"label map ({hint}, or map them to 'background')")
    mapped = np.zeros(array.shape, dtype=np.uint8)
    for value, target in lut.items():
        if target:
            mapped[array == value] = target
    out = sitk.GetImageFromArray(mapped)
    out.CopyInformation(label)
    return out


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
