"""An input volume under a parent transform (rotation + translation, as after a registration): the engine sees the
volume's own grid, and the segmentation lands under the same transform with the volume's own geometry as its
reference, so the transform counts once and Segment Editor paints on the volume's voxels. Real CT, real engine
(a tiny model), real MRML (slicer-core)."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from slicer_segment_fixtures import load_volume, new_scene, segment_values_on_grid, slicer
from test_slicer_segment_logic import ORGANS, cli_labels

from HSAMSegmentLib import SegmentLogic
from HSAMSegmentLib.volume_export import exportVolume


@pytest.fixture(scope="module")
def small_ct(data_dir):
    return data_dir / "totalsegmentator_tests" / "example_ct_sm.nii.gz"  # real CT, 122x101x30


def rotation_and_translation():
    """30 degrees about an oblique axis, then 40, -25, 60 mm."""
    import vtk

    transform = vtk.vtkTransform()
    transform.Translate(40.0, -25.0, 60.0)
    transform.RotateWXYZ(30.0, 1.0, 2.0, 3.0)
    return transform.GetMatrix()


def transformed_volume(scene, path):
    volume = load_volume(scene, path)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    transform.SetMatrixTransformToParent(rotation_and_translation())
    volume.SetAndObserveTransformNodeID(transform.GetID())
    return volume, transform


def own_geometry(volume) -> str:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return slicer.vtkSegmentationConverter.SerializeImageGeometry(matrix, volume.GetImageData())


def matrix_of(node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def test_segmentation_of_a_transformed_volume_lines_up_with_it(small_ct, tiny_model, tmp_path):
    reference = cli_labels(tiny_model, small_ct, tmp_path / "ref.nii.gz")
    logic = SegmentLogic()
    logic.setModelsHome(str(tmp_path / "home"))
    logic.tempRoot = str(tmp_path)
    scene = new_scene()
    volume, transform = transformed_volume(scene, small_ct)
    output = logic.process(volume, None, model=str(tiny_model), device="cpu", show3D=False)

    assert output.GetTransformNodeID() == transform.GetID()
    segmentation = output.GetSegmentation()
    geometry = segmentation.GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    assert geometry == own_geometry(volume)  # not moved by the transform a second time

    labels = segment_values_on_grid(scene, output, volume, ORGANS)
    assert labels.shape == reference.shape and np.array_equal(labels, reference)

    # The grid Segment Editor edits on: the segmentation's own reference geometry, with no volume given.
    import vtk

    ids = vtk.vtkStringArray()
    for name in ORGANS:
        ids.InsertNextValue(segmentation.GetSegmentIdBySegmentName(name))
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(scene)
    assert segmentations.ExportSegmentsToLabelmapNode(output, ids, labelmap, None,
                                                      slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    assert np.allclose(matrix_of(labelmap), matrix_of(volume))
    assert np.array_equal(slicer.util.arrayFromVolume(labelmap), reference)


def test_the_engine_gets_the_volume_own_grid_not_the_transformed_one(small_ct, tmp_path):
    scene = new_scene()
    volume, _ = transformed_volume(scene, small_ct)
    image = sitk.ReadImage(str(exportVolume(volume, tmp_path / "input.nrrd")))
    original = sitk.ReadImage(str(small_ct))
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(original))
    assert np.allclose(image.GetOrigin(), original.GetOrigin(), atol=1e-4)
    assert np.allclose(image.GetSpacing(), original.GetSpacing())
    assert np.allclose(image.GetDirection(), original.GetDirection(), atol=1e-6)
    assert volume.GetTransformNodeID()  # the user's volume keeps its transform
