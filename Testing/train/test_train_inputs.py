"""hsam train input checks: every problem is reported clearly, before any training starts."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from train_fixtures import synthetic_case, tiny_settings, write_volume

from hsam.models.label_map import LabelMapError, load_label_map
from hsam.train import TrainingError, train
from hsam.train.case_loading import read_segmentation
from hsam.train.case_manifest import read_manifest, split_cases, with_unique_names
from hsam.train.checkpoint import state_path

IDENTITY = {"classes": "btcv8"}  # label values are class values


def _write_map(tmp_path, data, name="map.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def _fails_before_training(settings, *needles):
    with pytest.raises(TrainingError) as exc:
        train(settings)
    message = str(exc.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    assert not state_path(settings.out).exists()  # nothing was trained or saved
    return message


def test_label_values_missing_from_the_map(tmp_path):
    cases = [synthetic_case(tmp_path, "a"), synthetic_case(tmp_path, "b")]
    label_map = _write_map(tmp_path, {"map": {"0": "background", "1": "spleen"}})  # 5 is not mapped
    _fails_before_training(tiny_settings(tmp_path / "out", cases, label_map=label_map),
                           "2 of 2 cases cannot be used", "case a_ct: label values 5 (720 voxels)",
                           "not in the label map", "case b_ct")


def test_values_beyond_the_classes_without_a_map(tmp_path):
    cases = [synthetic_case(tmp_path, "a"), synthetic_case(tmp_path, "b")]
    label = sitk.ReadImage(cases[0][1])
    array = sitk.GetArrayFromImage(label)
    array[0, 0, 0] = 12
    fixed = sitk.GetImageFromArray(array)
    fixed.CopyInformation(label)
    sitk.WriteImage(fixed, cases[0][1])
    _fails_before_training(tiny_settings(tmp_path / "out", cases, label_map=_write_map(tmp_path, IDENTITY)),
                           "label values 12 (1 voxels)", "classes 0..8", "--label-map")


def test_image_label_grid_mismatch(tmp_path):
    cases = [synthetic_case(tmp_path, "a"), synthetic_case(tmp_path, "b")]
    label = np.zeros((6, 32, 32), dtype=np.uint8)
    label[:, 8:20, 4:14] = 5
    write_volume(tmp_path / "a_label.nii.gz", label, spacing=(1.0, 1.0, 3.0))
    _fails_before_training(tiny_settings(tmp_path / "out", cases, label_map=_write_map(tmp_path, IDENTITY)),
                           "case a_ct: the label grid differs from the image", "spacing (1, 1, 3) vs (1.5, 1.5, 3)")
    write_volume(tmp_path / "a_label.nii.gz", label[:5])
    _fails_before_training(tiny_settings(tmp_path / "out", cases, label_map=_write_map(tmp_path, IDENTITY)),
                           "size (32, 32, 5) vs (32, 32, 6)")


def test_case_without_foreground(tmp_path):
    cases = [synthetic_case(tmp_path, "a"), synthetic_case(tmp_path, "empty", foreground=False)]
    _fails_before_training(tiny_settings(tmp_path / "out", cases, label_map=_write_map(tmp_path, IDENTITY)),
                           "case empty_ct: no foreground voxels", "leave the case out")


def test_one_case_only(tmp_path):
    cases = [synthetic_case(tmp_path, "a")]
    _fails_before_training(tiny_settings(tmp_path / "out", cases, label_map=_write_map(tmp_path, IDENTITY)),
                           "only one case (a_ct)", "validation needs a case of its own", "--no-validation")


def test_corrupt_checkpoint_on_resume(tmp_path):
    cases = [synthetic_case(tmp_path, "a"), synthetic_case(tmp_path, "b")]
    settings = tiny_settings(tmp_path / "out", cases, label_map=_write_map(tmp_path, IDENTITY), resume=True)
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(settings)
    state = state_path(settings.out)
    state.parent.mkdir(parents=True)
    state.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(TrainingError, match="the training checkpoint is damaged and cannot be resumed"):
        train(settings)


def test_an_existing_output_is_not_overwritten(tmp_path):
    cases = [synthetic_case(tmp_path, "a"), synthetic_case(tmp_path, "b")]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.json").write_text("{}")
    with pytest.raises(TrainingError, match="is not empty; continue its run with --resume"):
        train(tiny_settings(tmp_path / "out", cases, label_map=_write_map(tmp_path, IDENTITY)))


def test_map_targets_must_be_classes(tmp_path):
    with pytest.raises(LabelMapError, match="maps to 'kidney', which is not a class"):
        load_label_map({"map": {"2": "kidney"}}, None)
    mapping = load_label_map({"map": {"1": "Spleen", "2": 4, "Liver": "liver", "9": "background"}}, None)
    assert mapping.class_of_value(1) == 1 and mapping.class_of_value(2) == 4 and mapping.class_of_value(9) == 0
    assert mapping.class_of_value(3) is None
    assert mapping.class_of_segment("liver ") == 5 and mapping.class_of_segment("stomach") == 6
    with pytest.raises(LabelMapError, match="differ from the base model's"):
        load_label_map({"classes": [{"name": "tumour"}], "map": {"1": "tumour"}}, [{"value": 1, "name": "liver"}])


def test_manifest_csv_and_split_by_case(tmp_path):
    rows = ["image,label,split"] + [f"c{i}.nii.gz,c{i}_seg.nii.gz," for i in range(5)]
    (tmp_path / "cases.csv").write_text("\n".join(rows))
    manifest = read_manifest(tmp_path / "cases.csv")
    assert manifest.cases[0].image == str(tmp_path / "c0.nii.gz")
    train_cases, val_cases = split_cases(manifest.cases, None, seed=1)
    assert len(val_cases) == 1 and len(train_cases) == 4
    assert not {c.image for c in train_cases} & {c.image for c in val_cases}
    assert split_cases(manifest.cases, None, seed=1) == (train_cases, val_cases)  # seeded
    (tmp_path / "bad.csv").write_text("ct,mask\na,b\n")
    with pytest.raises(TrainingError, match="must name the columns image,label"):
        read_manifest(tmp_path / "bad.csv")


def test_seg_nrrd_segments_by_name_on_a_cropped_extent(tmp_path):
    image = sitk.GetImageFromArray(np.zeros((6, 32, 32), dtype=np.int16))
    image.SetSpacing((1.5, 1.5, 3.0))
    seg_array = np.zeros((4, 10, 12), dtype=np.uint8)
    seg_array[:, 2:6, 3:9] = 1
    seg_array[:, 7:9, 3:9] = 2
    seg = sitk.GetImageFromArray(seg_array)
    seg.SetSpacing((1.5, 1.5, 3.0))
    seg.SetOrigin((3 * 1.5, 5 * 1.5, 1 * 3.0))  # Slicer crops to the segments' extent: offset (3, 5, 1) voxels
    for i, (name, value) in enumerate([("Liver", 1), ("Tumor", 2)]):
        seg.SetMetaData(f"Segment{i}_ID", f"Segment_{i}")
        seg.SetMetaData(f"Segment{i}_Name", name)
        seg.SetMetaData(f"Segment{i}_LabelValue", str(value))
        seg.SetMetaData(f"Segment{i}_Layer", "0")
    path = str(tmp_path / "case.seg.nrrd")
    sitk.WriteImage(seg, path)
    with pytest.raises(TrainingError, match="segments 'Tumor' of .* are not in the label map"):
        read_segmentation(path, image, load_label_map(None, None), "case")
    mapping = load_label_map({"map": {"Tumor": "background"}}, None)
    classes = sitk.GetArrayFromImage(read_segmentation(path, image, mapping, "case"))
    assert classes.shape == (6, 32, 32)
    assert (classes == 5).sum() == 4 * 4 * 6 and classes[1, 7, 6] == 5 and classes.max() == 5


def test_cases_in_folders_of_the_same_file_names_are_told_apart(tmp_path):
    # The layout of the Slicer module's training cases: <case>/image.nrrd + <case>/label.seg.nrrd
    manifest = {"cases": [{"image": f"{n}/image.nrrd", "label": f"{n}/label.seg.nrrd"} for n in ("liver1", "liver2")]}
    (tmp_path / "cases.json").write_text(json.dumps(manifest))
    cases = with_unique_names(read_manifest(tmp_path / "cases.json").cases)
    assert [c.name for c in cases] == ["liver1/image", "liver2/image"]
    assert [c.name for c in split_cases(cases, 1, seed=0)[1]][0] in ("liver1/image", "liver2/image")
