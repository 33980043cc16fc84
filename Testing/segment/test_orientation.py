"""Canonical orientation on real CT: flipped, sagittal-acquired and oblique copies of one volume give the same
canonical voxels, and undoing it restores each input grid exactly."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hsam.io.orientation import from_canonical, orientation_code, to_canonical


@pytest.fixture(scope="module")
def ct(data_dir):
    return sitk.ReadImage(str(data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz"))


def _variants(image):
    flipped = sitk.Flip(image, [True, True, False])  # RAS-stored copy: same anatomy, other index order
    sagittal = sitk.PermuteAxes(image, [2, 0, 1])  # slices along i (left-right), as a sagittal acquisition
    oblique = sitk.Image(image)
    angle = np.deg2rad(12)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    oblique.SetDirection((rotation @ np.array(image.GetDirection()).reshape(3, 3)).flatten().tolist())
    return {"flipped": flipped, "sagittal": sagittal, "oblique": oblique, "flipped_sagittal": sitk.PermuteAxes(
        flipped, [1, 2, 0])}


def test_variants_reach_the_same_canonical_voxels(ct):
    reference, code = to_canonical(ct)
    assert code == "LPS" and orientation_code(reference) == "LPS"
    expected = sitk.GetArrayViewFromImage(reference)
    for name, image in _variants(ct).items():
        canonical, _ = to_canonical(image)
        assert orientation_code(canonical) == "LPS", name
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(canonical), expected, err_msg=name)
        if name != "oblique":  # same physical placement, not just the same voxels
            np.testing.assert_allclose(canonical.GetOrigin(), reference.GetOrigin(), atol=1e-3, err_msg=name)
            np.testing.assert_allclose(canonical.GetDirection(), reference.GetDirection(), atol=1e-6, err_msg=name)


def test_undo_restores_the_exact_input_grid(ct):
    for name, image in {"original": ct, **_variants(ct)}.items():
        canonical, code = to_canonical(image)
        labels = sitk.Cast(canonical > 0, sitk.sitkUInt8)  # stand-in for a model result on the canonical grid
        back = from_canonical(labels, image, code)
        assert back.GetSize() == image.GetSize(), name
        assert back.GetDirection() == image.GetDirection() and back.GetOrigin() == image.GetOrigin(), name
        assert back.GetSpacing() == image.GetSpacing(), name
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back),
                                      (sitk.GetArrayViewFromImage(image) > 0).astype(np.uint8), err_msg=name)


def test_rejects_2d_images():
    with pytest.raises(ValueError, match="3D"):
        to_canonical(sitk.Image(8, 8, sitk.sitkFloat32))
