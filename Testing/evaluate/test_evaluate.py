"""``hsam evaluate`` and its metrics on real BTCV labels."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from hsam.evaluation.metrics import dice, hd95, score_organs


def test_metrics_on_known_shapes():
    ref = np.zeros((20, 40, 40), bool)
    ref[5:15, 10:30, 10:30] = True
    shifted = np.roll(ref, 3, axis=2)  # 3 voxels along i
    assert dice(ref, ref) == 1.0
    assert dice(ref, shifted) == pytest.approx(2 * 10 * 20 * 17 / (2 * 4000))
    assert hd95(ref, shifted, (1, 1, 1)) == pytest.approx(3.0)
    assert hd95(ref, shifted, (2.5, 0.8, 0.8)) == pytest.approx(2.4)  # spacing (k, j, i): 3 x 0.8 mm
    scores = score_organs(np.where(shifted, 1, 0), np.where(ref, 1, 0), [1, 2], (1, 1, 1))
    assert scores[2] == (0.0, 0.0, 0.0)  # absent from both: TransUNet convention
    assert scores[1].dice < 1


def test_evaluate_prediction_against_btcv_labels(data_dir, tmp_path):
    label_path = data_dir / "btcv_synapse" / "256" / "case0005_label.nii.gz"
    label = sitk.ReadImage(str(label_path))
    array = sitk.GetArrayFromImage(label)
    eroded = array.copy()
    liver = array == 5
    eroded[liver & ~ndimage.binary_erosion(liver, iterations=2)] = 0  # a prediction that misses the liver's rim
    pred = sitk.GetImageFromArray(eroded)
    pred.CopyInformation(label)
    pred_path = tmp_path / "case0005.nii.gz"
    sitk.WriteImage(pred, str(pred_path))
    result = subprocess.run([sys.executable, "-m", "hsam", "evaluate", str(pred_path), "--labels", str(label_path),
                             "--out", str(tmp_path / "report")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "report" / "metrics.csv").read_text().splitlines()
    assert rows[0] == "case,organ,dice,hd95_voxel,hd95_mm" and len(rows) == 9
    by_organ = {r.split(",")[1]: [float(x) for x in r.split(",")[2:]] for r in rows[1:]}
    assert by_organ["spleen"] == [1.0, 0.0, 0.0]
    liver_dice, liver_hd_voxel, liver_hd_mm = by_organ["liver"]
    assert 0.8 < liver_dice < 1.0 and 2.0 <= liver_hd_voxel <= 3.0  # a 2-voxel rim
    assert liver_hd_voxel < liver_hd_mm <= 2 * liver_hd_voxel  # in-plane spacing is 2 mm, slices 1 mm
    assert "| liver |" in (tmp_path / "report" / "report.md").read_text()


def test_label_map_translates_reference_numbering(data_dir, tmp_path):
    """btcv_synapse numbers organs in the TransUNet order; the model's classes follow H-SAM's."""
    from hsam.models.labels import BTCV_8_ORGANS

    label_path = data_dir / "btcv_synapse" / "256" / "case0005_label.nii.gz"
    label = sitk.ReadImage(str(label_path))
    transunet = ["aorta", "gallbladder", "left kidney", "right kidney", "liver", "pancreas", "spleen", "stomach"]
    hsam_value = {o["name"]: o["value"] for o in BTCV_8_ORGANS}
    lut = np.array([0] + [hsam_value[name] for name in transunet], dtype=np.uint8)
    pred = sitk.GetImageFromArray(lut[sitk.GetArrayFromImage(label)])
    pred.CopyInformation(label)
    pred_path = tmp_path / "case0005.nii.gz"
    sitk.WriteImage(pred, str(pred_path))
    label_map = Path(__file__).resolve().parents[2] / "docs" / "examples" / "btcv_synapse_labels.json"
    result = subprocess.run([sys.executable, "-m", "hsam", "evaluate", str(pred_path), "--labels", str(label_path),
                             "--label-map", str(label_map), "--out", str(tmp_path / "r")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    dice_by_organ = {row.split(",")[1]: float(row.split(",")[2])
                     for row in (tmp_path / "r" / "metrics.csv").read_text().splitlines()[1:]}
    assert all(d == 1.0 for d in dice_by_organ.values()), dice_by_organ
