"""Shared pieces of the HSAM Train module tests: real BTCV CT cases as volume + segmentation nodes (built from the
label maps with Slicer's segmentations logic, as a user's corrected segmentation would be), and a tiny random
base model installed in a private models folder."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typing import Optional

import numpy as np
import pytest
import vtk

from model_fixtures import tiny_model_dir
from slicer_segment_fixtures import REPO, load_volume, new_scene, slicer

TRAIN_MODULE_DIR = REPO / "HSAMTrain"
if str(TRAIN_MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(TRAIN_MODULE_DIR))

from hsam.models import BTCV_8_ORGANS  # noqa: E402 (after the module paths)
from HSAMTrainLib import CaseList, TrainLogic  # noqa: E402

# btcv_synapse label values are in the TransUNet order (its SOURCE.md), not in the model's class order.
BTCV_SEGMENTS = {1: "aorta", 2: "gallbladder", 3: "left kidney", 4: "right kidney", 5: "liver", 6: "pancreas",
                 7: "spleen", 8: "stomach"}


def btcv_files(data_dir: Path, case: str):
    folder = Path(data_dir) / "btcv_synapse" / "256"
    return folder / f"{case}_ct.nii.gz", folder / f"{case}_label.nii.gz"


def btcv_case(scene, data_dir: Path, case: str, slices: Optional[int] = None):
    """(volume node, segmentation node with one segment per organ, the label array (k, j, i)). ``slices``: only
    that many axial slices around the middle of the labelled ones (a smaller real case, for quicker runs)."""
    image, label = btcv_files(data_dir, case)
    volume = load_volume(scene, image, case)
    labelmap = load_volume(scene, label, case + " labels", "vtkMRMLLabelMapVolumeNode")
    if slices:
        labelled = np.flatnonzero(slicer.util.arrayFromVolume(labelmap).any(axis=(1, 2)))
        first = max(0, int(labelled[len(labelled) // 2]) - slices // 2)
        for node in (volume, labelmap):
            crop_slices(node, first, slices)
    labels = np.array(slicer.util.arrayFromVolume(labelmap))
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", case + " segmentation")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    assert logic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    scene.RemoveNode(labelmap)
    content = segmentation.GetSegmentation()
    for index in range(content.GetNumberOfSegments()):
        segment = content.GetNthSegment(index)
        segment.SetName(BTCV_SEGMENTS[segment.GetLabelValue()])
    return volume, segmentation, labels


def crop_slices(node, first: int, count: int) -> None:
    """Keep axial slices first .. first + count - 1 (k runs superior in these files), in place."""
    voxels = np.array(slicer.util.arrayFromVolume(node)[first:first + count])
    origin = np.array(node.GetOrigin())
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    shift = [ijk_to_ras.GetElement(row, 2) * first for row in range(3)]
    slicer.util.updateVolumeFromArray(node, voxels)
    node.SetOrigin(*(origin + shift))


def install_tiny_model(home: Path, model_id: str = "tiny-base") -> Path:
    """A tiny random-weight BTCV model, imported into the models folder ``home`` like any model."""
    source = tiny_model_dir(home.parent / (model_id + "-source"))
    result = subprocess.run([sys.executable, "-m", "hsam", "models", "import", str(source), "--id", model_id,
                             "--home", str(home)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return home / "models" / model_id / "1"


ORGANS = [label["name"] for label in BTCV_8_ORGANS]
TINY = dict(recipe="custom", epochs=1, sliceFraction=0.15, batchSize=2, validationSlices=2, device="cpu",
            freezeEncoder=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("models") / "home"
    install_tiny_model(home)
    return home


@pytest.fixture(scope="module")
def scene_cases(data_dir):
    TrainLogic()  # registers the segmentation converters before any segmentation node exists
    scene = new_scene()
    # 24 axial slices of each: real CT and labels, small enough for quick engine runs on a CPU
    return scene, [btcv_case(scene, data_dir, name, slices=24) for name in ("case0005", "case0006")]


@pytest.fixture
def logic(home):
    logic = TrainLogic()
    logic.setModelsHome(str(home))
    return logic


def case_list(scene_cases):
    cases = CaseList()
    for volume, segmentation, _ in scene_cases[1]:
        cases.add(volume, segmentation)
    return cases


