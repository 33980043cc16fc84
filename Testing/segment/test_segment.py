"""``hsam segment`` on real CT: exact output grids, orientation invariance in physical space, outputs Slicer reads,
bad input, cancel."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from cli_runs import segment_stopped_at_first_progress
import SimpleITK as sitk

from hsam.models import BTCV_8_ORGANS


@pytest.fixture(scope="module")
def small_ct(data_dir):
    return data_dir / "totalsegmentator_tests" / "example_ct_sm.nii.gz"  # 122x101x30, stored RAS


def _segment(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "hsam", "segment", *map(str, args)], capture_output=True,
                            text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """Same size, and geometry equal up to the file format's float round trip (NRRD stores spacing x direction)."""
    return a.GetSize() == b.GetSize() and all(
        np.allclose(getattr(a, f)(), getattr(b, f)(), rtol=0, atol=1e-9)
        for f in ("GetSpacing", "GetOrigin", "GetDirection"))


def _variants(image: sitk.Image):
    oblique = sitk.Image(image)
    angle = np.deg2rad(15)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    oblique.SetDirection((rot @ np.array(image.GetDirection()).reshape(3, 3)).flatten().tolist())
    return {"lps_flip": sitk.Flip(image, [True, True, False]), "sagittal": sitk.PermuteAxes(image, [2, 0, 1]),
            "coronal_flipped": sitk.PermuteAxes(sitk.Flip(image, [False, True, True]), [0, 2, 1]),
            "oblique": oblique}


def test_orientations_agree_in_physical_space(tiny_model, small_ct, tmp_path):
    image = sitk.ReadImage(str(small_ct))
    _segment(small_ct, "-o", tmp_path / "ref.nii.gz", "--model", tiny_model, "--batch-size", "16")
    reference = sitk.ReadImage(str(tmp_path / "ref.nii.gz"))
    assert _same_grid(reference, image)
    ref = sitk.GetArrayFromImage(reference)
    assert ref.any()
    for name, variant in _variants(image).items():
        src = tmp_path / f"{name}.nrrd"
        sitk.WriteImage(variant, str(src))
        _segment(src, "-o", tmp_path / f"{name}_out.nrrd", "--model", tiny_model, "--batch-size", "16")
        out = sitk.ReadImage(str(tmp_path / f"{name}_out.nrrd"))
        assert _same_grid(out, sitk.ReadImage(str(src))), name  # exactly the input grid
        if name == "oblique":  # same voxels, rotated frame: labels follow the voxels
            np.testing.assert_array_equal(sitk.GetArrayFromImage(out), ref, err_msg=name)
            continue
        back = sitk.GetArrayFromImage(sitk.Resample(out, reference, sitk.Transform(), sitk.sitkNearestNeighbor))
        dice = 2 * np.sum((back == ref) & (ref > 0)) / (np.sum(back > 0) + np.sum(ref > 0))
        assert dice >= 0.99, (name, dice)


def test_seg_nrrd_opens_with_names_colors_and_all_segments(tiny_model, small_ct, tmp_path):
    import slicerio

    out = tmp_path / "ct.seg.nrrd"
    result = _segment(small_ct, "-o", out, "--model", tiny_model, "--progress", "jsonl", "--uncertainty",
                      tmp_path / "unc.nii.gz")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["event"] == "result" and events[-1]["path"] == str(out)
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 30
    seg = slicerio.read_segmentation(str(out))
    assert [s["name"] for s in seg["segments"]] == [o["name"] for o in BTCV_8_ORGANS]  # also organs not found
    spleen = seg["segments"][0]
    assert np.allclose(spleen["color"], np.array(BTCV_8_ORGANS[0]["color"]) / 255, atol=1e-3)
    assert spleen["terminology"]["type"][1] == "78961009"
    labelmap = sitk.GetArrayFromImage(sitk.ReadImage(str(small_ct)))
    assert seg["voxels"].shape == labelmap.shape[::-1]
    unc = sitk.ReadImage(str(tmp_path / "unc.nii.gz"))
    assert _same_grid(unc, sitk.ReadImage(str(small_ct))) and sitk.GetArrayViewFromImage(unc).max() > 0


def test_organ_subset_and_batch_folder(tiny_model, small_ct, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    image = sitk.ReadImage(str(small_ct))
    for name in ("a", "b"):
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
    _segment(folder, "-o", tmp_path / "out", "--model", tiny_model, "--organs", "liver", "left_kidney",
             "--format", ".nii.gz")
    for name in ("a", "b"):
        values = np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / f"{name}.nii.gz"))))
        assert set(values.tolist()) <= {0, 3, 5}


def _write(path, array, **kwargs):
    image = sitk.GetImageFromArray(array, **kwargs)
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize("case, needle", [
    ("2d", "3D"), ("vector", "components"), ("empty", "empty"), ("nan", "NaN"), ("garbage", "cannot be read"),
    ("missing", "no such file"), ("model", "not found")])
def test_bad_input_fails_with_one_line_and_no_output(tiny_model, tmp_path, case, needle):
    src = tmp_path / "in.nii.gz"
    model = tiny_model
    if case == "2d":
        _write(src, np.zeros((32, 32), np.int16))
    elif case == "vector":
        _write(src, np.random.rand(8, 32, 32, 3).astype(np.float32), isVector=True)
    elif case == "empty":
        _write(src, np.zeros((8, 32, 32), np.int16))
    elif case == "nan":  # NRRD keeps NaN (ITK's NIfTI writer turns it into 0)
        src = _write(tmp_path / "in.nrrd", np.full((8, 32, 32), np.nan, np.float32))
    elif case == "garbage":
        src.write_bytes(b"not an image at all")
    elif case == "missing":
        src = tmp_path / "absent.nii.gz"
    else:
        _write(src, np.random.rand(8, 32, 32).astype(np.float32))
        model = tmp_path / "no-such-model"
    out = tmp_path / "out.seg.nrrd"
    result = _segment(src, "-o", out, "--model", model, check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("hsam: error:")]
    assert len(errors) == 1 and errors[0] == lines[-1] and needle in errors[0], lines
    assert sorted(p.name for p in tmp_path.iterdir() if "out" in p.name) == []


def test_cancel_stops_promptly_without_output(tiny_model, data_dir, tmp_path):
    ct = data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz"  # 117 slices: long enough to interrupt
    out = tmp_path / "out.seg.nrrd"
    last = segment_stopped_at_first_progress(ct, "-o", out, "--model", tiny_model, "--batch-size", "2")[-1]
    assert last["event"] == "error" and last["cancelled"]
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file


def test_dicom_series_gives_output_on_its_grid(tiny_model, data_dir, tmp_path):
    from hsam.io.volume import read_image

    folder = data_dir / "totalsegmentator_tests" / "example_ct_dicom"
    _segment(folder, "-o", tmp_path / "dicom.nii.gz", "--model", tiny_model, "--batch-size", "10")
    assert _same_grid(sitk.ReadImage(str(tmp_path / "dicom.nii.gz")), read_image(folder))


def test_default_model_is_bundled_and_works_offline(data_dir, tmp_path):
    """No --model: the bundled hsam-abdomen-ct, from an empty model cache, with no network (HTTP(S) proxies set to
    a closed local port, so any download attempt would fail)."""
    ct = data_dir / "btcv_synapse" / "256" / "case0026_ct.nii.gz"
    small = tmp_path / "ct.nrrd"
    image = sitk.ReadImage(str(ct))
    sitk.WriteImage(image[:, :, 56:72], str(small))  # 16 slices through the kidneys, liver and spleen
    env = dict(os.environ, HSAM_HOME=str(tmp_path / "home"), HTTP_PROXY="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9")
    result = subprocess.run([sys.executable, "-m", "hsam", "segment", str(small), "-o", str(tmp_path / "out.nii.gz"),
                             "--device", "cpu"], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    # The card's inference options, with no option given (benchmarks/default_model/bundle.py).
    assert "inference options: --slice-smoothing 0.25, --box-prompts 0.5" in result.stdout + result.stderr
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out.nii.gz")))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(ct.with_name("case0026_label.nii.gz"))))[56:72]
    # The model's class values against the file's TransUNet values: right kidney, left kidney, liver, spleen.
    for ours, theirs in ((2, 4), (3, 3), (5, 5), (1, 7)):
        predicted, expected = labels == ours, truth == theirs
        dice = 2 * np.logical_and(predicted, expected).sum() / (predicted.sum() + expected.sum())
        assert dice > 0.7, (ours, dice)
