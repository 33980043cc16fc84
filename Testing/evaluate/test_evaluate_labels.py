"""``hsam evaluate`` says when the reference's label values do not mean the model's classes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from cli_runs import dice_by_organ, evaluate
from scipy import ndimage

from hsam.evaluation.label_agreement import labelling_warning
from hsam.models.labels import BTCV_8_ORGANS

LABEL_MAP = Path(__file__).resolve().parents[2] / "docs" / "examples" / "btcv_synapse_labels.json"
NAMES = {s["value"]: s["name"] for s in BTCV_8_ORGANS}
# btcv_synapse value (TransUNet order: aorta, gallbladder, left kidney, right kidney, liver, pancreas, spleen,
# stomach) -> the model's class value.
BTCV_TO_MODEL = np.array([0, 7, 4, 3, 2, 5, 8, 1, 6], dtype=np.uint8)
WARNING = "seems to number organs differently from the model"


def _crop(data_dir: Path, tmp_path: Path, first: int = 57, count: int = 6):
    """Slices of case0005 that hold 7 of the 8 organs, as image and raw label files."""
    folder = data_dir / "btcv_synapse" / "256"
    paths = []
    for kind in ("ct", "label"):
        image = sitk.ReadImage(str(folder / f"case0005_{kind}.nii.gz"))[:, :, first:first + count]
        paths.append(tmp_path / f"case0005_{kind}.nii.gz")
        sitk.WriteImage(image, str(paths[-1]))
    return paths


def test_model_against_raw_btcv_labels_warns_and_points_to_label_map(data_dir, tmp_path):
    ct, raw = _crop(data_dir, tmp_path)
    result = evaluate("hsam-abdomen-ct", "--images", str(ct), "--labels", str(raw), "--device", "cpu",
                      "--out", str(tmp_path / "raw"))
    assert result.returncode == 0, result.stderr
    assert WARNING in result.stderr and "--label-map" in result.stderr
    assert "docs/examples/btcv_synapse_labels.json" in result.stderr
    # BTCV's 7 is the spleen: the message says where that label lies.
    assert "label 7 lies where the model finds 'spleen'" in result.stderr
    raw_dice = dice_by_organ(tmp_path / "raw")
    result = evaluate("hsam-abdomen-ct", "--images", str(ct), "--labels", str(raw), "--label-map", str(LABEL_MAP),
                      "--device", "cpu", "--out", str(tmp_path / "mapped"))
    assert result.returncode == 0, result.stderr
    assert WARNING not in result.stderr
    mapped_dice = dice_by_organ(tmp_path / "mapped")
    assert mapped_dice["spleen"] > 0.9 and raw_dice["spleen"] < 0.1, (raw_dice, mapped_dice)


def test_raw_btcv_labels_against_a_prediction_file(data_dir, tmp_path):
    """A prediction in the model's numbering against the raw BTCV file: warned without the map, silent with it."""
    label_path = data_dir / "btcv_synapse" / "256" / "case0006_label.nii.gz"
    label = sitk.ReadImage(str(label_path))
    pred = sitk.GetImageFromArray(BTCV_TO_MODEL[sitk.GetArrayFromImage(label)])
    pred.CopyInformation(label)
    pred_path = tmp_path / "case0006.nii.gz"
    sitk.WriteImage(pred, str(pred_path))
    result = evaluate(str(pred_path), "--labels", str(label_path))
    assert result.returncode == 0 and WARNING in result.stderr and "--label-map" in result.stderr
    result = evaluate(str(pred_path), "--labels", str(label_path), "--label-map", str(LABEL_MAP))
    assert result.returncode == 0 and WARNING not in result.stderr, result.stderr


def test_rule_on_real_labels(data_dir):
    reference = BTCV_TO_MODEL[sitk.GetArrayFromImage(
        sitk.ReadImage(str(data_dir / "btcv_synapse" / "256" / "case0009_label.nii.gz")))].astype(np.int32)
    # A poor prediction in the right numbering (every organ shrunk by 2 voxels, the pancreas missing): no warning.
    poor = np.zeros_like(reference)
    for value in range(1, 8):
        poor[ndimage.binary_erosion(reference == value, iterations=2)] = value
    assert labelling_warning(reference, poor, NAMES, "c", mapped=False) is None
    # Left and right kidney swapped in the reference: both named.
    swapped = reference.copy()
    swapped[reference == 2], swapped[reference == 3] = 3, 2
    message = labelling_warning(swapped, reference, NAMES, "c", mapped=True)
    assert "label 2 lies where the model finds 'left kidney'" in message
    assert "label 3 lies where the model finds 'right kidney'" in message
    assert "check the label map given with --label-map" in message
    # A single-organ file that calls the liver 1, with another organ's value beyond the model's classes.
    single = np.where(reference == 5, 1, 0) + np.where(reference == 7, 20, 0)
    message = labelling_warning(single, reference, NAMES, "c", mapped=False)
    assert "label 1 lies where the model finds 'liver'" in message
    assert "label values 20 are not classes of the model" in message
