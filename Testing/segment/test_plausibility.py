"""Implausible inputs: an MR volume or a tiny volume given to the CT model (warned), an image given as labels
(refused), on the project's real scans."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

from hsam.infer.plausibility import check_label_values, image_warnings
from hsam.io.volume import VolumeError, read_image

CARD = json.loads((Path(__file__).resolve().parents[2] / "hsam" / "models" / "bundled" / "hsam-abdomen-ct" /
                   "model.json").read_text())
NOT_CT = "does not look like a CT in Hounsfield units"
SMALL = "a small volume"


def hsam(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsam", *args], capture_output=True, text=True, timeout=600)


def test_rules_on_every_kind_of_scan(data_dir):
    ts = data_dir / "totalsegmentator_tests"
    cts = [data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz", data_dir / "btcv_synapse" / "512" /
           "case0024_ct.nii.gz", ts / "example_ct.nii.gz", ts / "example_ct_sm.nii.gz", ts / "example_ct_dicom"]
    mrs = [ts / "example_mr_sm.nii.gz", data_dir / "chaos_t2" / "image_1.nii.gz",
           sorted((data_dir / "la_mri").glob("*_mr.nii.gz"))[0]]
    for path in cts:
        image = read_image(path)
        assert image_warnings(image, CARD, str(path)) == [], path
        with pytest.raises(VolumeError, match="looks like an image"):  # a CT given as labels
            check_label_values(sitk.GetArrayFromImage(image), path)
    for path in mrs:
        image = read_image(path)
        warnings = image_warnings(image, CARD, str(path))
        assert len(warnings) == 1 and NOT_CT in warnings[0] and "hsam train" in warnings[0], path
        with pytest.raises(VolumeError, match="looks like an image"):
            check_label_values(sitk.GetArrayFromImage(image), path)
    for path in (data_dir / "btcv_synapse" / "256" / "case0005_label.nii.gz", ts / "example_seg.nii.gz",
                 data_dir / "chaos_t2" / "label_1.nii.gz"):
        check_label_values(sitk.GetArrayFromImage(read_image(path)), path)  # real label maps pass
    # An MR model (percentile normalisation) is not asked for Hounsfield units.
    assert image_warnings(read_image(mrs[1]), dict(CARD, normalization={"kind": "percentiles"}), "mr") == []
    ct = read_image(cts[0])
    tiny = ct[100:103, 100:103, 50:53]
    assert SMALL in image_warnings(tiny, CARD, "tiny")[0]
    narrow = ct[100:120, :, 50:60]  # 20 voxels of 2 mm: 40 mm across
    assert SMALL in image_warnings(narrow, CARD, "narrow")[0]
    assert image_warnings(ct[:, :, 50:53], CARD, "three slices") == []  # few slices but a whole plane: fine


def test_segment_warns_for_mr_and_tiny_volumes_and_still_writes(data_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    mr = read_image(data_dir / "chaos_t2" / "image_1.nii.gz")
    sitk.WriteImage(mr[:, :, 15:17], str(inputs / "mr.nii.gz"))
    ct = read_image(data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz")
    sitk.WriteImage(ct[100:103, 100:103, 60:63], str(inputs / "tiny.nii.gz"))
    sitk.WriteImage(ct[:, :, 60:62], str(inputs / "ct.nii.gz"))
    result = hsam("segment", str(inputs), "-o", str(tmp_path / "out"), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(NOT_CT in line and "mr.nii.gz" in line for line in lines), result.stderr
    assert any(SMALL in line and "tiny.nii.gz" in line for line in lines), result.stderr
    assert f"warning: {inputs / 'ct.nii.gz'}:" not in result.stderr  # the real CT passes
    assert len(list((tmp_path / "out").iterdir())) == 3  # warnings, not errors: every result is written


def test_evaluate_refuses_an_image_as_labels_before_running_the_model(data_dir, tmp_path):
    ct = data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz"
    label = data_dir / "btcv_synapse" / "256" / "case0005_label.nii.gz"
    result = hsam("evaluate", "hsam-abdomen-ct", "--images", str(ct), "--labels", str(ct), "--device", "cpu")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("hsam: error: ") and "looks like an image (CT/MR), not a label map" in \
        result.stderr and "--labels" in result.stderr and "segmenting" not in result.stderr
    # A CT passed as the prediction (the arguments swapped) is refused too.
    result = hsam("evaluate", str(ct), "--labels", str(label))
    assert result.returncode == 1 and "given as the prediction labels" in result.stderr
    # An MR image as the labels: no negative values, but 856 distinct ones.
    result = hsam("evaluate", str(label), "--labels", str(data_dir / "chaos_t2" / "image_1.nii.gz"))
    assert result.returncode == 1 and "856 distinct values" in result.stderr


def test_evaluate_warns_for_an_mr_image(data_dir, tmp_path):
    """The CT model on CHAOS T2 MR (liver, kidneys, spleen labelled): scored, with the reason the scores are low."""
    folder = data_dir / "chaos_t2"
    for kind in ("image", "label"):
        sitk.WriteImage(read_image(folder / f"{kind}_1.nii.gz")[:, :, 15:17], str(tmp_path / f"{kind}.nii.gz"))
    label_map = tmp_path / "chaos.json"
    label_map.write_text(json.dumps({"map": {"0": "background", "1": "liver", "2": "right kidney",
                                             "3": "left kidney", "4": "spleen"}}))
    result = hsam("evaluate", "hsam-abdomen-ct", "--images", str(tmp_path / "image.nii.gz"), "--labels",
                  str(tmp_path / "label.nii.gz"), "--label-map", str(label_map), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert NOT_CT in result.stderr and "| liver |" in result.stdout
    assert re.search(r"segmenting: .*\d/2 \[\d\d:\d\d<\d\d:\d\d", result.stderr)  # elapsed<estimate left
