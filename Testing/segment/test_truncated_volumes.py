"""A volume file that holds less voxel data than its header says is refused by every reader the engine uses (every
format, DICOM series, and the segment, evaluate and train entry points), never read with zeros."""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from hsam.io.volume import VolumeError, read_image

# (file name, compressed, the file that holds the voxels)
FORMATS = [("a.nii", False, "a.nii"), ("a.nii.gz", True, "a.nii.gz"), ("a.nrrd", False, "a.nrrd"),
           ("a.nrrd", True, "a.nrrd"), ("a.mha", False, "a.mha"), ("a.mha", True, "a.mha"),
           ("a.mhd", False, "a.raw"), ("a.mhd", True, "a.zraw"), ("a.nhdr", False, "a.raw"),
           ("a.hdr", False, "a.img")]


@pytest.fixture(scope="module")
def ct(data_dir):
    return sitk.ReadImage(str(data_dir / "btcv_synapse" / "256" / "case0026_ct.nii.gz"))[:, :, 60:64]


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: min(len(data) - 1, int(len(data) * keep))])


@pytest.mark.parametrize("name, compressed, data_file", FORMATS,
                         ids=[f"{n}{'-compressed' if c else ''}" for n, c, _ in FORMATS])
@pytest.mark.parametrize("keep", [0.999, 0.7, 0.2])
def test_truncated_file_is_refused_in_every_format(ct, tmp_path, name, compressed, data_file, keep):
    path = tmp_path / name
    sitk.WriteImage(ct, str(path), compressed)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(path)), sitk.GetArrayFromImage(ct))
    _truncate(tmp_path / data_file, keep)
    with pytest.raises(VolumeError) as error:
        read_image(path)
    message = str(error.value)
    assert data_file in message or name in message
    assert any(word in message for word in ("truncated", "fread got only", "expected")), message


def test_gzip_of_a_short_nifti_and_a_damaged_gzip_are_refused(ct, tmp_path):
    whole = tmp_path / "whole.nii"
    sitk.WriteImage(ct, str(whole))
    short = tmp_path / "short.nii.gz"  # a complete gzip stream around a truncated .nii
    short.write_bytes(gzip.compress(whole.read_bytes()[:-5000]))
    with pytest.raises(VolumeError, match="truncated"):
        read_image(short)
    damaged = tmp_path / "damaged.nii.gz"  # one byte of the CRC changed: the data no longer matches it
    data = bytearray(gzip.compress(whole.read_bytes()))
    data[-6] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(VolumeError, match="damaged"):
        read_image(damaged)


@pytest.fixture()
def dicom_copy(data_dir, tmp_path):
    folder = tmp_path / "dicom"
    shutil.copytree(data_dir / "totalsegmentator_tests" / "example_ct_dicom", folder)
    return folder, sorted(folder.iterdir())


@pytest.mark.parametrize("index", [0, 7, 19])
@pytest.mark.parametrize("keep", [0.999, 0.5])
def test_dicom_series_with_a_truncated_file_is_refused(dicom_copy, index, keep):
    folder, files = dicom_copy
    assert read_image(folder).GetSize()[2] == 20
    _truncate(files[index], keep)
    with pytest.raises(VolumeError, match="truncated or damaged") as error:
        read_image(folder)
    assert files[index].name in str(error.value)


def test_dicom_series_with_a_missing_slice_is_refused(dicom_copy):
    folder, files = dicom_copy
    files[7].unlink()
    with pytest.raises(VolumeError, match="not evenly spaced"):
        read_image(folder)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "hsam", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def _one_error_line(result, needle):
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("hsam: error:") and needle in lines[-1], lines


def test_segment_and_evaluate_refuse_a_truncated_nifti(ct, tmp_path):
    whole = tmp_path / "ct.nii.gz"
    sitk.WriteImage(ct, str(whole), True)
    labels = tmp_path / "labels.nii"
    sitk.WriteImage(sitk.Cast(ct > 100, sitk.sitkUInt8), str(labels))
    _truncate(labels, 0.6)
    _one_error_line(_cli("evaluate", whole, "--labels", labels), "truncated")
    _truncate(whole, 0.8)
    out = tmp_path / "out.nii.gz"
    _one_error_line(_cli("segment", whole, "-o", out, "--device", "cpu"), "truncated")
    assert not out.exists()


def test_training_refuses_a_truncated_case(ct, tmp_path):
    from hsam.models.label_map import load_label_map
    from hsam.train.case_loading import load_cases
    from hsam.train.case_manifest import Case
    from hsam.train.errors import TrainingError

    image, label = tmp_path / "ct.nii", tmp_path / "label.nii.gz"
    sitk.WriteImage(ct, str(image))
    sitk.WriteImage(sitk.Cast(ct > 100, sitk.sitkUInt8), str(label), True)
    _truncate(image, 0.9)
    with pytest.raises(TrainingError, match="truncated"):
        load_cases([Case(str(image), str(label))], load_label_map(None, None), {"kind": "ct_window"}, "LPS", "square")
    os.truncate(image, 0)  # an empty file: SimpleITK's own error, still one clear line
    with pytest.raises(TrainingError, match="cannot be read"):
        load_cases([Case(str(image), str(label))], load_label_map(None, None), {"kind": "ct_window"}, "LPS", "square")


def test_training_refuses_a_truncated_slicer_segmentation(ct, tmp_path):
    """Slicer .seg.nrrd labels are read by SimpleITK's NRRD reader, which refuses short data itself."""
    from hsam.infer.output import write_labels
    from hsam.models import BTCV_8_ORGANS
    from hsam.models.label_map import load_label_map
    from hsam.train.case_loading import read_segmentation
    from hsam.train.errors import TrainingError

    seg = tmp_path / "labels.seg.nrrd"
    write_labels(sitk.Cast(ct > 100, sitk.sitkUInt8), seg, BTCV_8_ORGANS)
    label_map = load_label_map(None, None)
    assert sitk.GetArrayFromImage(read_segmentation(seg, ct, label_map, "a")).any()
    _truncate(seg, 0.9)
    with pytest.raises(TrainingError, match="cannot be read"):
        read_segmentation(seg, ct, label_map, "a")
