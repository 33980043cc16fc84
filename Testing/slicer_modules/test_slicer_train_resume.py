"""HSAM Train's logic: a run cancelled mid-epoch (the engine saves a checkpoint) and resumed to completion, with a
class the base model does not have (the base model grows a mask token for it)."""
from __future__ import annotations

import json

import numpy as np

from slicer_segment_fixtures import slicer
from slicer_train_fixtures import ORGANS, TINY

from HSAMSharedLib import ProcessingState
from HSAMTrainLib import CaseList, TrainingSettings, segmentRows


def with_lesion(scene, volume, segmentation, labels):
    """A copy of the segmentation plus "lesion", a structure the base model does not know: a few liver slices."""
    copy = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", segmentation.GetName() + " with lesion")
    copy.GetSegmentation().DeepCopy(segmentation.GetSegmentation())
    liver_slices = np.flatnonzero((labels == 5).any(axis=(1, 2)))
    lesion = np.zeros_like(labels, dtype=np.uint8)
    middle = liver_slices[len(liver_slices) // 2]
    near = slice(max(0, middle - 3), middle + 3)
    lesion[near] = labels[near] == 5
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    labelmap.CopyOrientation(volume)
    slicer.util.updateVolumeFromArray(labelmap, lesion)
    assert slicer.vtkSlicerSegmentationsModuleLogic().ImportLabelmapToSegmentationNode(labelmap, copy)
    scene.RemoveNode(labelmap)
    content = copy.GetSegmentation()
    content.GetNthSegment(content.GetNumberOfSegments() - 1).SetName("lesion")
    return copy


def test_cancel_then_resume_with_a_new_class(logic, scene_cases):
    scene = scene_cases[0]
    cases = CaseList()
    for volume, segmentation, labels in scene_cases[1]:
        cases.add(volume, with_lesion(scene, volume, segmentation, labels))
    base = next(b for b in logic.baseModels() if b.id == "tiny-base")
    mapping = logic.suggestMapping(cases, base)
    assert mapping.targetOf("lesion") is None
    mapping.addNewClass(next(r for r in segmentRows(cases) if r.name == "lesion"))

    events = []
    job = logic.startTraining(cases, mapping, base, "tiny-lesion", settings=TrainingSettings(**dict(TINY, epochs=4)),
                              progressCallback=events.append)
    while job.poll() and not any(e["event"] == "step" for e in events):
        pass
    job.cancel()
    job.wait()
    assert job.cancelled and job.state == ProcessingState.IDLE
    assert job.run.stateFile.is_file() and [r.outputName for r in logic.stoppedRuns()] == ["tiny-lesion"]
    assert "tiny-lesion" not in [m.id for m in logic.listModels()]

    resumed = logic.resumeTraining("tiny-lesion")
    result = logic.waitForResult(resumed)
    card = json.loads((result.path / "model.json").read_text())
    assert [label["name"] for label in card["labels"]] == ORGANS + ["lesion"]
    assert card["training"]["status"] == "complete" and card["training"]["epochs_done"] == 4
    assert card["comparison"]["organs"]["lesion"]["base"] is None  # the base model has no such class
    assert resumed.progress.columns()["epoch"] == [1.0, 2.0, 3.0, 4.0]
    assert logic.stoppedRuns() == []
