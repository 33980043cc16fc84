"""HSAM Train's GUI-free parts on a real MRML scene (slicer-core) and real BTCV CT, without training: the case
list and its summaries, the segment mapping (terminology first, then names), problems found before a start, the
export of cases and their manifest, folders of saved cases, progress events into plot data, the run time
estimate."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import vtk

from slicer_segment_fixtures import load_volume, new_scene, slicer, terminology_string
from slicer_train_fixtures import BTCV_SEGMENTS, TRAIN_MODULE_DIR, btcv_case, btcv_files

from hsam.models import BTCV_8_ORGANS
from hsam.train import TrainSettings
from hsam.train.case_loading import CaseVolume
from hsam.train.dataset import pick_slices
from HSAMSharedLib import EngineLogic
from HSAMSharedLib.training_cases import addTrainingCase
from HSAMTrainLib import (BACKGROUND, TRAIN, VALIDATION, CaseList, TrainingPlot, TrainingProgress,
                          TrainingSettings, loadCaseFiles, segmentRows)
from HSAMTrainLib.case_export import exportCases
from HSAMTrainLib.estimate import engineDefault, estimateRun, pickedSlices, readMachineFactors, recordRunTime
from HSAMTrainLib.input_check import inputProblems
from HSAMTrainLib.segment_mapping import suggestMapping

CLASS_VALUE = {label["name"]: label["value"] for label in BTCV_8_ORGANS}


@pytest.fixture(scope="module")
def scene_with_cases(data_dir):
    EngineLogic()  # registers the segmentation converters, as the module's logic does
    scene = new_scene()
    first = btcv_case(scene, data_dir, "case0005")
    second = btcv_case(scene, data_dir, "case0006")
    return scene, first, second


@pytest.fixture
def cases(scene_with_cases):
    _, (volume1, segmentation1, _), (volume2, segmentation2, _) = scene_with_cases
    cases = CaseList()
    cases.add(volume1, segmentation1)
    cases.add(volume2, segmentation2)
    return cases


def modified_times(*nodes):
    return [node.GetMTime() for node in nodes]


def test_case_list_roles_names_order_and_summaries(scene_with_cases, cases):
    _, (volume1, segmentation1, labels1), _ = scene_with_cases
    assert [c.role for c in cases] == [TRAIN, VALIDATION]  # the second case validates by default
    assert [c.name for c in cases] == ["case0005", "case0006"]
    summary = cases[0].summary
    assert summary.slices == labels1.shape[0]  # k runs superior here
    assert summary.labelledSlices == int(labels1.reshape(labels1.shape[0], -1).any(axis=1).sum())
    assert summary.segmentVoxels == {name: int((labels1 == value).sum()) for value, name in BTCV_SEGMENTS.items()}
    with pytest.raises(ValueError, match="already a case"):
        cases.add(volume1, segmentation1)
    scene = segmentation1.GetScene()
    with pytest.raises(ValueError, match="same scan as case case0005"):  # never training and validation at once
        cases.add(volume1, scene.AddNewNodeByClass("vtkMRMLSegmentationNode"))
    other = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "case0005")  # same name, another scan
    other.CopyOrientation(volume1)
    slicer.util.updateVolumeFromArray(other, slicer.util.arrayFromVolume(volume1) + 1)
    third = cases.add(other, scene.AddNewNodeByClass("vtkMRMLSegmentationNode"))
    assert third.name == "case0005_2" and third.role == TRAIN
    assert cases.move(2, -5) == 0 and [c.name for c in cases] == ["case0005_2", "case0005", "case0006"]
    cases.remove(0)
    assert [c.name for c in cases] == ["case0005", "case0006"]
    assert not cases.removeCasesOf(third.segmentationNode)
    scene.RemoveNode(other)
    assert cases.removeCasesOf(volume1) and [c.name for c in cases] == ["case0006"]  # its node left the scene


def test_mapping_by_terminology_first_then_name(scene_with_cases, cases):
    scene = scene_with_cases[0]
    volume = cases[0].volumeNode
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "renamed")
    segmentation.GetSegmentation().DeepCopy(cases[0].segmentationNode.GetSegmentation())
    content = segmentation.GetSegmentation()
    liver = content.GetSegment(content.GetSegmentIdBySegmentName("liver"))
    liver.SetName("Leber")  # a name no class has, but the standard terminology of the liver
    liver.SetTag(liver.GetTerminologyEntryTagName(), terminology_string(BTCV_8_ORGANS[4]))
    content.GetSegment(content.GetSegmentIdBySegmentName("spleen")).SetName("Spleen")
    content.GetSegment(content.GetSegmentIdBySegmentName("aorta")).SetName("vessel")
    renamed = CaseList()
    renamed.add(volume, segmentation)
    rows = segmentRows(renamed)
    mapping = suggestMapping(rows, BTCV_8_ORGANS)
    assert mapping.targetOf("Leber") == "liver" and mapping.targetOf("spleen") == "spleen"
    assert mapping.targetOf("vessel") is None  # neither terminology nor name match: the user decides
    problems = inputProblems(renamed, mapping, "site-a")
    assert any("case0005" in p and "'vessel'" in p for p in problems)
    mapping.addNewClass(next(r for r in rows if r.name == "vessel"))
    assert mapping.valueOf("vessel") == 9 and mapping.classes[-1]["name"] == "vessel"
    again = suggestMapping(rows, BTCV_8_ORGANS, previous=mapping)  # e.g. after adding a case: choices stay
    assert again.valueOf("vessel") == 9 and again.targetOf("Leber") == "liver"
    mapping.setTarget("vessel", BACKGROUND)
    mapping.removeUnusedNewClasses()
    assert mapping.valueOf("vessel") == 0 and len(mapping.classes) == 8
    fresh = suggestMapping(rows, [], newClassesForUnmatched=True)  # a new model: every segment is a class
    assert [c["name"] for c in fresh.classes] == [r.name for r in rows]
    assert fresh.classes[[r.name for r in rows].index("Leber")]["terminology"]["type"]["CodeValue"] == "10200004"


def test_problems_before_start(cases):
    mapping = suggestMapping(segmentRows(cases), BTCV_8_ORGANS)
    assert inputProblems(cases, mapping, "site-a", existingModels=["tiny"]) == []
    assert any("exists already" in p for p in inputProblems(cases, mapping, "tiny", existingModels=["tiny"]))
    assert any("use letters" in p for p in inputProblems(cases, mapping, "a b"))
    cases[1].role = TRAIN
    assert any("No validation case" in p for p in inputProblems(cases, mapping, "site-a"))
    cases[1].role = VALIDATION


def test_export_writes_each_case_once_on_its_grid_with_class_values(scene_with_cases, cases, tmp_path):
    _, (volume1, segmentation1, labels1), (volume2, segmentation2, labels2) = scene_with_cases
    mapping = suggestMapping(segmentRows(cases), BTCV_8_ORGANS)
    mapping.setTarget("gallbladder", BACKGROUND)  # left out: its voxels are background
    before = modified_times(volume1, segmentation1, volume2, segmentation2)
    manifest = exportCases(cases, mapping, tmp_path)
    assert modified_times(volume1, segmentation1, volume2, segmentation2) == before  # the user's nodes: read only
    data = json.loads(manifest.read_text())
    assert [(c["image"], c["label"], c["split"]) for c in data["cases"]] == [
        ("images/case0005.nrrd", "labels/case0005.nrrd", "train"),
        ("images/case0006.nrrd", "labels/case0006.nrrd", "val")]
    assert [c["name"] for c in data["label_map"]["classes"]] == [label["name"] for label in BTCV_8_ORGANS]
    assert data["label_map"]["map"]["5"] == "liver" and data["label_map"]["map"]["0"] == BACKGROUND
    lut = np.zeros(9, dtype=np.uint8)
    for value, name in BTCV_SEGMENTS.items():
        lut[value] = 0 if name == "gallbladder" else CLASS_VALUE[name]
    check = new_scene()
    for row, volume, labels in zip(data["cases"], (volume1, volume2), (labels1, labels2)):
        image = load_volume(check, tmp_path / row["image"])
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storage.SetFileName(str(tmp_path / row["label"]))
        label = check.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        assert storage.ReadData(label)
        for node in (image, label):
            assert np.allclose(ijk_to_ras(node), ijk_to_ras(volume))
        assert np.array_equal(slicer.util.arrayFromVolume(image), slicer.util.arrayFromVolume(volume))
        assert np.array_equal(slicer.util.arrayFromVolume(label), lut[labels])
    slicer.mrmlScene = scene_with_cases[0]


def ijk_to_ras(node):
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def test_saved_training_cases_load_back_as_nodes(scene_with_cases, tmp_path):
    _, (volume, segmentation, labels), _ = scene_with_cases
    addTrainingCase(volume, segmentation, tmp_path)  # HSAM Segment's "Add to training cases"
    scene = new_scene()
    [(loaded_volume, loaded_segmentation, split)] = loadCaseFiles(tmp_path, scene)
    assert loaded_volume.GetName() == "case0005" and split == ""
    cases = CaseList()
    case = cases.add(loaded_volume, loaded_segmentation)
    assert case.summary.segmentVoxels == {name: int((labels == value).sum()) for value, name in BTCV_SEGMENTS.items()}
    slicer.mrmlScene = scene_with_cases[0]


def test_a_manifest_with_label_maps_loads_with_named_segments(data_dir, tmp_path):
    image, label = btcv_files(data_dir, "case0007")
    (tmp_path / "cases.json").write_text(json.dumps({
        "cases": [{"image": str(image), "label": str(label), "split": "val"}],
        "label_map": {"map": {str(v): name for v, name in BTCV_SEGMENTS.items()}}}))
    scene = new_scene()
    [(volume, segmentation, split)] = loadCaseFiles(tmp_path / "cases.json", scene)
    content = segmentation.GetSegmentation()
    assert split == "val" and volume.GetName() == "case0007_ct"
    assert sorted(content.GetNthSegment(i).GetName() for i in range(content.GetNumberOfSegments())) == \
        sorted(BTCV_SEGMENTS.values())


def test_progress_events_become_the_plot(scene_with_cases):
    events = [
        {"event": "log", "message": "1 training cases, 1 validation cases; reading and checking them"},
        {"event": "step", "epoch": 1, "step": 1, "steps": 4, "loss": 0.9, "lr": 0.001, "eta_s": 30.0},
        {"event": "epoch", "epoch": 1, "epochs": 2, "loss": 0.85, "val_dice": {"liver": 0.4}, "val_dice_mean": 0.2,
         "best": 1, "wall_s": 10.0, "eta_s": 12.0},
        {"event": "checkpoint", "path": "/runs/a/model/training/state.pt", "epoch": 1, "step": 2},
        {"event": "step", "epoch": 2, "step": 3, "steps": 4, "loss": 0.7, "lr": 0.001, "eta_s": 5.0},
        {"event": "epoch", "epoch": 2, "epochs": 2, "loss": 0.6, "val_dice_mean": 0.35, "best": 2, "eta_s": 0.0},
        {"event": "done", "model": "/runs/a/model", "status": "complete", "best_epoch": 2, "val_dice_mean": 0.35},
    ]
    progress = TrainingProgress()
    changed = [progress.handle(e) for e in events]
    assert changed == [False, False, True, False, False, True, False]
    assert progress.columns() == {"epoch": [1.0, 2.0], "training loss": [0.85, 0.6], "validation Dice": [0.2, 0.35]}
    assert progress.checkpoint.endswith("state.pt") and progress.bestEpoch == 2 and progress.finished
    assert progress.epochs[0].organDice == {"liver": 0.4}
    scene = scene_with_cases[0]
    plot = TrainingPlot(scene)
    plot.update(progress)
    table = plot.table.GetTable()
    assert table.GetNumberOfRows() == 2
    assert [table.GetValueByName(1, name).ToDouble() for name in ("epoch", "training loss", "validation Dice")] == \
        [2.0, 0.6, 0.35]
    # one chart per curve, each with its own y-axis; Dice on a fixed 0-1 scale
    assert [c.GetNumberOfPlotSeriesNodes() for c in plot.charts] == [1, 1]
    assert [c.GetYAxisTitle() for c in plot.charts] == ["training loss", "validation Dice"]
    assert [c.GetNthPlotSeriesNode(0).GetYColumnName() for c in plot.charts] == ["training loss", "validation Dice"]
    assert not plot.charts[1].GetYAxisRangeAuto() and tuple(plot.charts[1].GetYAxisRange()) == (0.0, 1.0)
    # the panel's plot is not the user's data: hidden, and never written into the user's scene file
    view = plot.viewNode(scene)
    for node in plot.nodes() + [view]:
        assert not node.GetSaveWithScene() and node.GetHideFromEditors()
    scene.SetSaveToXMLString(1)
    scene.Commit()
    saved = scene.GetSceneXMLString()
    assert "HSAM training" not in saved and "case0005" in saved
    plot.remove()
    scene.RemoveNode(view)
    assert all(scene.GetNodeByID(c.GetID()) is None for c in plot.charts)


def test_estimate_counts_the_slices_the_engine_picks_and_learns_this_machine(cases, tmp_path):
    engine_defaults = {f.name: f.default for f in dataclasses.fields(TrainSettings)}
    assert engineDefault("cached_views") == engine_defaults["cached_views"] == 3
    case = cases[0]
    labels = np.zeros((case.summary.slices, 4, 4), dtype=np.uint8)
    labels[:case.summary.labelledSlices] = 1  # as many labelled slices as the real case
    for fraction in (0.05, 0.3, 1.0):
        engine = pick_slices([CaseVolume("c", labels.astype(np.float32), labels)], fraction,
                             engine_defaults["empty_slice_fraction"], seed=1)
        assert pickedSlices(case.summary.slices, case.summary.labelledSlices, fraction) == len(engine)
    settings = TrainingSettings(recipe="custom", epochs=10, sliceFraction=0.3, batchSize=4)
    estimate = estimateRun(cases, settings)
    assert estimate.trainingSlices == pickedSlices(case.summary.slices, case.summary.labelledSlices, 0.3)
    assert estimate.steps == 10 * (estimate.trainingSlices // 4)
    assert estimate.validationSlices == min(40, cases[1].summary.slices)
    assert "estimate" in estimate.describe()
    slower = estimateRun(cases, TrainingSettings(recipe="custom", epochs=10, sliceFraction=0.3, batchSize=4,
                                                 freezeEncoder=False))
    assert slower.seconds > estimate.seconds  # LoRA backpropagates through the encoder
    # The few-shot recipe counts its own values, not the panel's: every slice, 12 epochs of 8, 16 validation slices.
    few_shot = estimateRun(cases, TrainingSettings(epochs=10, sliceFraction=0.3, batchSize=4))
    assert few_shot.trainingSlices == pickedSlices(case.summary.slices, case.summary.labelledSlices, 1.0)
    assert few_shot.steps == 12 * (few_shot.trainingSlices // 8)
    assert few_shot.validationSlices == min(16, cases[1].summary.slices)
    assert estimate.seconds < few_shot.seconds < slower.seconds  # LoRA in 2 blocks, not in all 12
    assert estimateRun(cases, settings, deviceKind="cuda").seconds < estimate.seconds / 10
    assert readMachineFactors(tmp_path) == {}
    assert recordRunTime(tmp_path, "cpu", estimated=100.0, measured=300.0) == 3.0
    assert recordRunTime(tmp_path, "cpu", 100.0, 100.0, previousFactor=3.0) == 2.0
    assert estimateRun(cases, settings, machineFactor=2.0).seconds == pytest.approx(2 * estimate.seconds)


def test_the_estimate_and_the_mapping_run_the_engines_rules_without_importing_the_engine():
    """Slicer's process must not import torch (nor the hsam package, which would): the estimate and the segment
    mapping load the engine files they need on their own."""
    script = ("import sys\n"
              "from HSAMTrainLib.estimate import pickedSlices\n"
              "from HSAMTrainLib.segment_mapping import SegmentMapping\n"
              "assert pickedSlices(100, 60, 0.3) == 30 and pickedSlices(100, 20, 0.5) == 25\n"
              "mapping = SegmentMapping([{'name': 'liver'}])\n"
              "mapping.setTarget(' Liver ', 'LIVER')\n"
              "assert mapping.valueOf('liver') == 1\n"
              "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('hsam', 'torch'))\n"
              "assert not loaded, loaded\n")
    paths = os.pathsep.join([str(TRAIN_MODULE_DIR), str(TRAIN_MODULE_DIR.parent / "HSAMSegment")])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=paths))
    assert result.returncode == 0, result.stderr
