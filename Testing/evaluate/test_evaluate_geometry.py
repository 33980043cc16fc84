"""``hsam evaluate`` compares prediction and reference in physical space, never voxel index by voxel index."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runs import dice_by_organ, evaluate
import SimpleITK as sitk

from hsam.evaluation.geometry import align_reference
from hsam.io.volume import VolumeError, read_image

# TotalSegmentator "total" ids of the model's organs -> the model's class names (everything else: background).
TOTALSEG_TO_MODEL = {1: "spleen", 2: "right kidney", 3: "left kidney", 4: "gallbladder", 5: "liver", 6: "stomach",
                     7: "pancreas", 52: "aorta"}


def totalseg_label_map(label_file: Path, out: Path) -> Path:
    values = np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(label_file))))
    mapping = {str(int(v)): TOTALSEG_TO_MODEL.get(int(v), "background") for v in values}
    out.write_text(json.dumps({"map": mapping}))
    return out


def test_reference_with_flipped_axis_is_resampled(data_dir, tmp_path):
    """example_seg_dicom.nii.gz has the DICOM series' array size but its y axis flipped: paired by index, spleen
    scored 0.04. A prediction equal to the labels in physical space must score 1."""
    folder = data_dir / "totalsegmentator_tests"
    seg_path = folder / "example_seg_dicom.nii.gz"
    ct = read_image(folder / "example_ct_dicom")
    seg = sitk.ReadImage(str(seg_path))
    assert seg.GetSize() == ct.GetSize() and seg.GetDirection()[4] == -1 and ct.GetDirection()[4] == 1
    # The same labels on the CT's grid: flipping j is the exact physical match (origins are at opposite ends).
    lut = np.zeros(256, np.uint8)
    for value, name in TOTALSEG_TO_MODEL.items():
        lut[value] = {"spleen": 1, "right kidney": 2, "left kidney": 3, "gallbladder": 4, "liver": 5, "stomach": 6,
                      "aorta": 7, "pancreas": 8}[name]
    prediction = sitk.GetImageFromArray(lut[np.flip(sitk.GetArrayFromImage(seg), axis=1)])
    prediction.CopyInformation(ct)
    pred_path = tmp_path / "example_ct_dicom.nii.gz"
    sitk.WriteImage(prediction, str(pred_path))
    label_map = totalseg_label_map(seg_path, tmp_path / "map.json")
    result = evaluate(str(pred_path), "--labels", str(seg_path), "--label-map", str(label_map),
                      "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "resampled the reference onto the prediction's grid" in result.stderr
    assert "direction" in result.stderr and "origin" in result.stderr  # the difference is named
    dice = dice_by_organ(tmp_path / "r")
    for organ in ("spleen", "liver", "stomach", "aorta", "pancreas"):
        assert dice[organ] == 1.0, dice


def test_model_on_dicom_crop_against_flipped_full_labels(data_dir, tmp_path):
    """The default model on 6 slices of the DICOM series, scored against the full, y-flipped TotalSegmentator
    labels (a different size, origin and direction): spleen agrees as it does on the whole series (0.96)."""
    folder = data_dir / "totalsegmentator_tests"
    seg_path = folder / "example_seg_dicom.nii.gz"
    crop = read_image(folder / "example_ct_dicom")[:, :, 8:14]  # keeps its place in physical space
    crop_path = tmp_path / "ct_crop.nii.gz"
    sitk.WriteImage(crop, str(crop_path))
    label_map = totalseg_label_map(seg_path, tmp_path / "map.json")
    result = evaluate("hsam-abdomen-ct", "--images", str(crop_path), "--labels", str(seg_path), "--label-map",
                      str(label_map), "--device", "cpu", "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "size (512, 512, 20) vs (512, 512, 6)" in result.stderr
    dice = dice_by_organ(tmp_path / "r")
    assert dice["spleen"] > 0.9 and dice["liver"] > 0.9, dice


def _box_image(size, spacing, origin, direction, box_index) -> sitk.Image:
    array = np.zeros(size[::-1], np.uint8)
    (i0, i1), (j0, j1), (k0, k1) = box_index
    array[k0:k1, j0:j1, i0:i1] = 1
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def test_shifted_and_flipped_synthetic_grids():
    identity = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    prediction = _box_image((40, 40, 20), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), identity, ((10, 20), (6, 16), (4, 8)))
    # The same box, on a grid shifted by 10 mm along x (so its index is 10 lower) ...
    shifted = _box_image((40, 40, 20), (1.0, 1.0, 2.0), (10.0, 0.0, 0.0), identity, ((0, 10), (6, 16), (4, 8)))
    # ... and on a grid whose y axis runs the other way, from the far end.
    flipped = _box_image((40, 40, 20), (1.0, 1.0, 2.0), (0.0, 39.0, 0.0), (1, 0, 0, 0, -1, 0, 0, 0, 1),
                         ((10, 20), (24, 34), (4, 8)))
    # ... and at half the resolution in-plane.
    coarse = _box_image((20, 20, 20), (2.0, 2.0, 2.0), (0.5, 0.5, 0.0), identity, ((5, 10), (3, 8), (4, 8)))
    pred = sitk.GetArrayFromImage(prediction)
    for reference, covered in ((shifted, "covers 75.0% of the prediction"), (flipped, None), (coarse, None)):
        logged = []
        aligned, inside = align_reference(reference, prediction, "ref", logged.append)
        assert np.array_equal(sitk.GetArrayFromImage(aligned), pred * (inside if inside is not None else 1))
        assert len(logged) == 1 and "resampled" in logged[0]
        assert (inside is None) == (covered is None)
        assert covered is None or covered in logged[0]
    assert align_reference(prediction, prediction, "ref")[1] is None
    same_grid = _box_image((40, 40, 20), (1.0, 1.0, 2.0), (1e-5, 0.0, 0.0), identity, ((0, 1), (0, 1), (0, 1)))
    logged = []
    assert align_reference(same_grid, prediction, "ref", logged.append)[0] is same_grid and not logged


def test_reference_that_does_not_overlap_is_refused(tmp_path):
    identity = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    box = ((10, 20), (5, 15), (4, 8))
    prediction = _box_image((40, 40, 20), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), identity, box)
    elsewhere = _box_image((40, 40, 20), (1.0, 1.0, 2.0), (500.0, 0.0, 0.0), identity, box)
    with pytest.raises(VolumeError, match=r"do not overlap in space \(origin \(500, 0, 0\) vs \(0, 0, 0\) mm"):
        align_reference(elsewhere, prediction, "ref")
    sitk.WriteImage(prediction, str(tmp_path / "pred.nii.gz"))
    sitk.WriteImage(elsewhere, str(tmp_path / "ref.nii.gz"))
    result = evaluate(str(tmp_path / "pred.nii.gz"), "--labels", str(tmp_path / "ref.nii.gz"))
    assert result.returncode == 1 and result.stderr.splitlines()[-1].startswith("hsam: error: ")
    assert "do not overlap in space" in result.stderr and "origin" in result.stderr
