"""MR as a modality of its own, on the project's real MR and CT: per-scan percentile normalisation, the modality
that ``hsam train --modality`` records in a model's card, the warning when a scan does not fit the model's
modality, and a new one-structure MR model (the left atrium, a class no built-in table knows) trained from --case
pairs, whose ``hsam segment`` result is a .seg.nrrd segment with the label map's name, color and terminology."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from model_fixtures import tiny_one_class_model_dir

from hsam.infer.plausibility import intensity_warning
from hsam.infer.slice_predictor import SlicePredictor
from hsam.io.normalize import normalize, percentile_range
from hsam.io.volume import read_image
from hsam.models import load_model
from hsam.models.card import CT_WINDOW, MR_PERCENTILES, read_card
from hsam.train.model_setup import resolve_base

LEFT_ATRIUM = {"name": "left atrium", "color": [206, 110, 84], "terminology": {
    "category": {"CodingSchemeDesignator": "SCT", "CodeValue": "123037004", "CodeMeaning": "Anatomical Structure"},
    "type": {"CodingSchemeDesignator": "SCT", "CodeValue": "82471001", "CodeMeaning": "Left atrium"}}}
LA_SCANS = ("06SR5RBREL16DQ6M8LWS", "0RZDK210BSMWAA6467LU", "1D7CUD1955YZPGK8XHJX")
LOOKS_LIKE_CT = "looks like a CT in Hounsfield units"
NOT_CT = "does not look like a CT in Hounsfield units"
# Tiny and quick: a random LiteMedSAM-shaped backbone at 64 px, two slices of the training case, one epoch.
TINY_TRAINING = ("--base", "litemedsam_tiny", "--lora-rank", "2", "--slice-fraction", "0.25", "--batch-size", "2",
                 "--val-slices", "2", "--epochs", "1", "--device", "cpu", "--progress", "none")


def hsam(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsam", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def project_scans(data_dir: Path):
    """(CTs, MRs): every scan of the project's test data."""
    ts = data_dir / "totalsegmentator_tests"
    cts = sorted((data_dir / "btcv_synapse").glob("*/*_ct.nii.gz")) + [ts / "example_ct.nii.gz",
                                                                         ts / "example_ct_sm.nii.gz",
                                                                         ts / "example_ct_dicom"]
    mrs = [ts / "example_mr_sm.nii.gz"] + sorted((data_dir / "chaos_t2").glob("image_*.nii.gz")) + \
        sorted((data_dir / "la_mri").glob("*_mr.nii.gz"))
    return cts, mrs


@pytest.fixture(scope="module")
def la_cases(data_dir, tmp_path_factory):
    """(image, label) files: 8 axial slices through the middle of the left atrium of three real LA MR scans
    (z-scored floats, 0.625 mm voxels, the whole 87 x 114 mm plane)."""
    folder = tmp_path_factory.mktemp("la")
    cases = []
    for name in LA_SCANS:
        image = read_image(data_dir / "la_mri" / f"{name}_mr.nii.gz")
        label = read_image(data_dir / "la_mri" / f"{name}_label.nii.gz")
        labelled = np.flatnonzero(sitk.GetArrayViewFromImage(label).any(axis=(1, 2)))
        first = int(labelled[len(labelled) // 2]) - 4
        pair = (folder / f"{name}_mr.nii.gz", folder / f"{name}_label.nii.gz")
        sitk.WriteImage(image[:, :, first:first + 8], str(pair[0]))
        sitk.WriteImage(label[:, :, first:first + 8], str(pair[1]))
        cases.append(pair)
    return cases


@pytest.fixture(scope="module")
def la_label_map(tmp_path_factory):
    path = tmp_path_factory.mktemp("map") / "left_atrium.json"
    path.write_text(json.dumps({"classes": [dict(LEFT_ATRIUM, value=1)], "map": {"1": "left atrium"}}))
    return path


def train(out: Path, cases, label_map: Path, *flags) -> dict:
    """A real ``hsam train`` run on the first case, validated on the second; returns the model's card."""
    pairs = [arg for image, label in cases[:2] for arg in ("--case", image, label)]
    result = hsam("train", "--out", out, "--label-map", label_map, *pairs, *TINY_TRAINING, *flags)
    assert result.returncode == 0, result.stderr
    return read_card(out)


@pytest.fixture(scope="module")
def la_model(la_cases, la_label_map, tmp_path_factory):
    """A new left-atrium model trained on MR: ``hsam train --modality mr`` from a backbone."""
    out = tmp_path_factory.mktemp("trained") / "la-mr"
    train(out, la_cases, la_label_map, "--modality", "mr")
    return out


def test_percentile_scale_of_real_mr_is_in_unit_range_and_ignores_outliers(data_dir):
    _, mrs = project_scans(data_dir)
    for path in (mrs[0], mrs[1], mrs[-1]):  # totalsegmentator (int16), chaos_t2 (0..~1000), la_mri (z-scored)
        volume = sitk.GetArrayFromImage(read_image(path)).astype(np.float32)
        scaled = normalize(volume, MR_PERCENTILES)
        assert scaled.dtype == np.float32 and scaled.min() == 0 and scaled.max() == 1, path
        inside = scaled[volume != 0]
        assert 0.05 < np.median(inside) < 0.6, path  # the tissue spread over the range, not squashed at one end
        # A few extreme voxels (a spike, a metal artefact) leave the scaling of every other voxel alone: min/max
        # scaling would squash the whole scan towards 0.
        spiked = volume.copy()
        spiked.flat[::100_000] = 1e6
        kept = np.ones(volume.size, bool)
        kept[::100_000] = False
        assert np.abs(normalize(spiked, MR_PERCENTILES).ravel()[kept] - scaled.ravel()[kept]).max() < 0.01, path
        # Zero padding around the field of view is not tissue: it does not move the range.
        padded = np.pad(volume, ((0, 0), (0, 0), (0, 3 * volume.shape[2])))
        assert percentile_range(padded) == percentile_range(volume), path


def test_slice_batches_are_scaled_with_the_whole_scan_range(la_cases, tmp_path):
    """Training normalises whole volumes; segmenting must scale every slice batch with the same range, so the
    result does not depend on the batch size."""
    model_dir = tiny_one_class_model_dir(tmp_path / "mr", LEFT_ATRIUM, MR_PERCENTILES)
    volume = sitk.GetArrayFromImage(read_image(la_cases[0][0]))
    # The precondition that makes the comparison meaningful: single slices have ranges of their own.
    assert max(abs(percentile_range(s)[1] - percentile_range(volume)[1]) for s in volume) > 0.1
    model = load_model(model_dir)
    one = SlicePredictor(model, torch.device("cpu"), batch_size=1, precision="fp32").predict(volume, uncertainty=True)
    all_at_once = SlicePredictor(model, torch.device("cpu"), batch_size=len(volume), precision="fp32").predict(
        volume, uncertainty=True)
    np.testing.assert_allclose(one.uncertainty, all_at_once.uncertainty, atol=1e-5)
    np.testing.assert_array_equal(one.labels, all_at_once.labels)


def test_the_modality_rule_on_every_scan_of_the_project(data_dir):
    ct_card = {"id": "ct-model", "normalization": CT_WINDOW}
    mr_card = {"id": "mr-model", "normalization": MR_PERCENTILES}
    cts, mrs = project_scans(data_dir)
    assert len(cts) == 18 and len(mrs) == 27
    for path in cts:
        volume = sitk.GetArrayFromImage(read_image(path))
        assert intensity_warning(volume, ct_card, str(path)) is None, path
        warning = intensity_warning(volume, mr_card, str(path))
        assert warning and LOOKS_LIKE_CT in warning and "'mr-model' was trained on MR" in warning, path
    for path in mrs:
        volume = sitk.GetArrayFromImage(read_image(path))
        assert intensity_warning(volume, mr_card, str(path)) is None, path
        warning = intensity_warning(volume, ct_card, str(path))
        assert warning and NOT_CT in warning and "--modality mr" in warning, path


def test_segment_warns_when_a_ct_is_given_to_an_mr_model(data_dir, la_cases, tmp_path):
    model_dir = tiny_one_class_model_dir(tmp_path / "mr", LEFT_ATRIUM, MR_PERCENTILES, "la-mr")
    inputs = tmp_path / "in"
    inputs.mkdir()
    ct = read_image(data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz")
    sitk.WriteImage(ct[:, :, 60:62], str(inputs / "ct.nii.gz"))  # clipped to -125..275 HU: no air at -1000
    sitk.WriteImage(read_image(la_cases[2][0])[:, :, :2], str(inputs / "mr.nii.gz"))
    result = hsam("segment", inputs, "-o", tmp_path / "out", "--model", model_dir, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(inputs / "ct.nii.gz") in warnings[0] and LOOKS_LIKE_CT in warnings[0]
    assert "'la-mr' was trained on MR" in warnings[0] and "--modality ct" in warnings[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ct.seg.nrrd", "mr.seg.nrrd"]  # still written


def test_new_left_atrium_model_from_case_pairs_segments_a_named_coded_structure(la_model, la_cases, tmp_path):
    import slicerio

    card = read_card(la_model)
    assert card["normalization"] == MR_PERCENTILES
    assert card["labels"] == [dict(LEFT_ATRIUM, value=1)] and card["config"]["num_classes"] == 2
    out = tmp_path / "held_out.seg.nrrd"
    result = hsam("segment", la_cases[2][0], "-o", out, "--model", la_model, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "warning:" not in result.stderr  # a real MR scan fits an MR model
    segmentation = slicerio.read_segmentation(str(out))
    assert [s["name"] for s in segmentation["segments"]] == ["left atrium"]
    segment = segmentation["segments"][0]
    assert segment["labelValue"] == 1
    assert np.allclose(segment["color"], np.array(LEFT_ATRIUM["color"]) / 255, atol=1e-3)
    terminology = segment["terminology"]
    assert terminology["category"] == ["SCT", "123037004", "Anatomical Structure"]
    assert terminology["type"] == ["SCT", "82471001", "Left atrium"]
    assert segmentation["voxels"].shape == sitk.ReadImage(str(la_cases[2][0])).GetSize()


def test_a_fine_tuned_model_keeps_the_base_modality_unless_told(la_model, la_cases, la_label_map, tmp_path):
    # The MR model fine-tuned further, no --modality: still MR (a new model's default would be CT).
    assert train(tmp_path / "again", la_cases, la_label_map, "--base", la_model)["normalization"] == MR_PERCENTILES
    # A CT model adapted to MR: the MR normalization, and the base's classes (names, colors, terminology) kept.
    ct_base = tiny_one_class_model_dir(tmp_path / "ct-base", LEFT_ATRIUM, CT_WINDOW)
    adapted = train(tmp_path / "adapted", la_cases, la_label_map, "--base", ct_base, "--modality", "mr")
    assert adapted["normalization"] == MR_PERCENTILES and adapted["labels"] == read_card(ct_base)["labels"]
    # What the runs above did not show: without --modality a CT base stays CT, and a new model is CT.
    assert resolve_base(str(ct_base)).normalization() == CT_WINDOW
    assert resolve_base("litemedsam_tiny").normalization() == CT_WINDOW


def test_an_unknown_modality_is_a_usage_error_before_any_work(tmp_path):
    result = hsam("train", "--out", tmp_path / "model", "--modality", "xyz", "--case", "a.nii.gz", "b.nii.gz")
    assert result.returncode == 2
    assert "argument --modality: invalid choice: 'xyz'" in result.stderr and "'ct', 'mr'" in result.stderr
    assert not (tmp_path / "model").exists()
