"""Slices keep their shape in mm (hsam/io/slice_field.py): a non-square field is padded to a square before the
resize, in hsam segment and in hsam train alike, and old models keep the stretched slices they were trained on."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import hsam
from hsam.infer.slice_predictor import SlicePredictor
from hsam.io.slice_field import SQUARE, STRETCHED, Padding, field_padding, slice_field_of
from hsam.models.label_map import load_label_map
from hsam.train.case_loading import load_case
from hsam.train.case_manifest import Case


def test_padding_makes_the_field_square_in_millimetres():
    assert field_padding((101, 122), (3.0, 3.0), SQUARE) == Padding(10, 11, 0, 0)
    assert field_padding((256, 256), (2.0, 2.0), SQUARE) == Padding()
    # 100 columns of 1 mm and 40 rows of 2 mm: 100 x 80 mm, so 10 rows of 2 mm are added
    assert field_padding((40, 100), (1.0, 2.0), SQUARE) == Padding(5, 5, 0, 0)
    assert field_padding((101, 122), (3.0, 3.0), STRETCHED) == Padding()
    with pytest.raises(ValueError, match="unknown slice field"):
        field_padding((4, 4), (1.0, 1.0), "round")


def test_pad_then_crop_gives_back_the_slices():
    slices = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    padding = field_padding(slices.shape[1:], (1.0, 1.0), SQUARE)
    padded = padding.pad(slices)
    assert padded.shape == (2, 5, 5) and padded[:, 0].sum() == 0 and padded[:, -1].sum() == 0
    np.testing.assert_array_equal(padding.crop(padded), slices)
    np.testing.assert_array_equal(padding.crop(torch.from_numpy(padded)).numpy(), slices)


def test_cards_without_the_field_are_stretched_and_new_models_square():
    assert slice_field_of({"labels": []}) == STRETCHED
    assert slice_field_of({"slice_field": SQUARE}) == SQUARE
    assert slice_field_of(None) == SQUARE
    assert hsam.load_model("hsam-abdomen-ct").card["slice_field"] == SQUARE


def _tiny(field):
    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny"), "random", seed=5).eval()
    model.card = {"normalization": {"kind": "ct_window", "window": [-125, 275]}, "slice_field": field}
    return model


def test_a_non_square_volume_is_segmented_as_its_square_padding():
    rng = np.random.default_rng(2)
    volume = rng.normal(40, 150, size=(3, 30, 48)).astype(np.float32)  # 30 rows of 1.6 mm x 48 columns of 1 mm
    padding = field_padding(volume.shape[1:], (1.0, 1.6), SQUARE)
    assert padding == Padding(0, 0, 0, 0)  # 48 x 48 mm already
    volume = rng.normal(40, 150, size=(3, 30, 48)).astype(np.float32)  # 30 x 48 mm at 1 mm
    padding = field_padding(volume.shape[1:], (1.0, 1.0), SQUARE)
    assert padding == Padding(9, 9, 0, 0)
    square = SlicePredictor(_tiny(SQUARE), torch.device("cpu"), batch_size=3, precision="fp32")
    labels, _ = square.predict(volume, spacing=(1.0, 1.0))
    padded = padding.pad(volume, value=-1000.0)  # below the window: normalised to 0, as the padding is
    expected, _ = SlicePredictor(_tiny(SQUARE), torch.device("cpu"), batch_size=3, precision="fp32").predict(padded)
    np.testing.assert_array_equal(labels, padding.crop(expected))
    stretched, _ = SlicePredictor(_tiny(STRETCHED), torch.device("cpu"), batch_size=3,
                                  precision="fp32").predict(volume, spacing=(1.0, 1.0))
    assert (stretched != labels).any(), "the stretched field should see these slices differently"


def test_training_cases_are_padded_like_inference(tmp_path):
    image = sitk.GetImageFromArray(np.full((2, 6, 10), 100, np.int16))
    image.SetSpacing((2.0, 2.0, 3.0))
    label = sitk.GetImageFromArray(np.ones((2, 6, 10), np.uint8))
    label.CopyInformation(image)
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(label, str(tmp_path / "label.nii.gz"))
    case = Case(str(tmp_path / "ct.nii.gz"), str(tmp_path / "label.nii.gz"))
    volume = load_case(case, load_label_map(None, None), {"kind": "ct_window", "window": [-125, 275]}, "LPS", SQUARE)
    assert volume.image.shape == volume.label.shape == (2, 10, 10)
    assert volume.label[:, 2:8].all() and not volume.label[:, :2].any() and not volume.label[:, 8:].any()
    assert not volume.image[:, :2].any() and volume.image[:, 2:8].min() > 0.5
    old = load_case(case, load_label_map(None, None), {"kind": "ct_window", "window": [-125, 275]}, "LPS", STRETCHED)
    assert old.image.shape == (2, 6, 10)


def test_a_trained_model_keeps_its_base_field():
    from hsam.train.model_setup import BaseModel

    assert BaseModel("litemedsam", None, None).slice_field == SQUARE
    assert BaseModel("old", {"labels": []}, None).slice_field == STRETCHED
    assert BaseModel("new", copy.deepcopy(hsam.load_model("hsam-abdomen-ct").card), None).slice_field == SQUARE
