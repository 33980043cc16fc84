"""The lighter post-processing, writing and reorientation give exactly what the previous pipeline gave."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hsam.infer import previous_pipeline
from hsam.infer.output import write_labels
from hsam.infer.postprocess import keep_largest_components
from hsam.io.orientation import Grid, from_canonical, to_canonical
from hsam.models import load_model


def _labels_with_islands(data_dir) -> np.ndarray:
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(data_dir / "btcv_synapse" / "256" / "case0005_label.nii.gz")))
    rng = np.random.default_rng(0)
    noisy = reference.copy()
    spots = rng.integers(0, noisy.size, 3000)
    noisy.ravel()[spots] = rng.integers(1, 9, spots.size)  # islands of every organ all over the volume
    return noisy


def test_largest_components_as_the_previous_whole_volume_labelling(data_dir):
    labels = _labels_with_islands(data_dir)
    expected = previous_pipeline.keep_largest_components(labels, range(1, 9))
    assert np.count_nonzero(expected != labels) > 1000  # the islands were there to remove
    kept_only = [1, 5]
    partial = keep_largest_components(labels.copy(), kept_only)
    assert np.array_equal(partial, previous_pipeline.keep_largest_components(labels, kept_only))
    result = keep_largest_components(labels, range(1, 9))
    assert result is labels  # in place: no second label volume
    assert np.array_equal(result, expected)


def test_more_components_than_16_bits_hold():
    labels = np.zeros((3, 530, 530), np.uint8)
    labels[1, ::2, ::2] = 3  # 70,225 single voxels, none touching another
    labels[1, 0, 0:3] = 3  # one of them two voxels larger: it alone stays
    keep_largest_components(labels, [3])
    assert np.count_nonzero(labels) == 3 and labels[1, 0, :3].tolist() == [3, 3, 3]


def test_a_segmentation_file_is_byte_for_byte_the_previous_writers(data_dir, tmp_path):
    labels = sitk.ReadImage(str(data_dir / "btcv_synapse" / "256" / "case0005_label.nii.gz"))
    labels.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    labels.SetOrigin((3.0, -2.0, 1.5))
    specs = load_model("hsam-abdomen-ct").card["labels"]
    ours = write_labels(labels, tmp_path / "ours.seg.nrrd", specs)
    before = previous_pipeline.write_segmentation(labels, tmp_path / "before.seg.nrrd", specs)
    assert _without_write_time(ours.read_bytes()) == _without_write_time(before.read_bytes())


def _without_write_time(data: bytes) -> bytes:
    """pynrrd's header says when it was written, to the second: two writes may straddle a second."""
    header_end = data.index(b"\n\n")
    lines = [line for line in data[:header_end].split(b"\n") if not line.startswith(b"# on ")]
    assert len(lines) == data[:header_end].count(b"\n")  # exactly one time line was dropped
    return b"\n".join(lines) + data[header_end:]


def test_a_result_goes_back_onto_a_grid_as_onto_its_image():
    image = sitk.Image(6, 5, 4, sitk.sitkInt16)
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, -1, 0))  # acquired sideways: reoriented both ways
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((10.0, -4.0, 7.0))
    canonical, code = to_canonical(image)
    result = sitk.GetImageFromArray(np.arange(120, dtype=np.uint8).reshape(sitk.GetArrayViewFromImage(canonical).shape))
    result.CopyInformation(canonical)
    on_image = from_canonical(result, image, code)
    on_grid = from_canonical(result, Grid.of(image), code)
    assert np.array_equal(sitk.GetArrayFromImage(on_grid), sitk.GetArrayFromImage(on_image))
    assert Grid.of(on_grid) == Grid.of(image)
