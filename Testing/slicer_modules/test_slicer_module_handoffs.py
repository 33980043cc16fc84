"""What the two Slicer modules do between themselves and with the scene, GUI-free on slicer-core: the models-changed
signal both logics share, HSAM Train's Start rule on first use, the organ choice rule, one scan as one case, the
training-case handoff through the scene, a scene closed during a segmentation or a training run (cancelled at
once, nothing imported, the run resumable), training that lists no models and writes its cases in the
background."""
from __future__ import annotations

import time

import numpy as np
import pytest
from packaging.requirements import Requirement

from slicer_segment_fixtures import load_volume, new_scene
from slicer_train_fixtures import TINY, btcv_case

from HSAMSharedLib import MODELS_CHANGED, Notifier, ProcessingState
from HSAMSegmentLib import SegmentLogic, organsToSegment
from HSAMSharedLib.dependencies import missingRequirements
from HSAMSharedLib.thread_worker import ThreadWorker
from HSAMSharedLib.training_cases import addTrainingCase, readManifest, takePendingTrainingCases
from HSAMTrainLib import CaseList, TrainingSettings, loadCaseFiles
from HSAMTrainLib.input_check import startBlockers


@pytest.fixture
def heard():
    """What MODELS_CHANGED said during the test."""
    reasons = []
    MODELS_CHANGED.connect(reasons.append)
    yield reasons
    MODELS_CHANGED.disconnect(reasons.append)


def test_a_failing_listener_does_not_stop_the_others():
    notifier, heard = Notifier("test"), []

    def broken(reason):
        raise RuntimeError("a deleted widget")

    notifier.connect(broken)
    notifier.connect(heard.append)
    notifier.connect(heard.append)  # connected once only
    notifier.emit("x")
    assert heard == ["x"]
    notifier.disconnect(broken)
    assert notifier.listeners == [heard.append]


def test_deleting_models_tells_both_modules_to_list_again(tmp_path, heard):
    logic = SegmentLogic()
    logic.setModelsHome(str(tmp_path))
    (tmp_path / "downloads").mkdir()
    assert logic.clearDownloadedModels([]) == [tmp_path / "downloads"]
    assert heard == ["models deleted"]


def test_start_is_enabled_on_first_use_whatever_else_is_missing():
    problems = ["Add cases and choose a base model."]  # what HSAM Train shows before any model is listed
    missing = missingRequirements([Requirement("hsam-test-package-that-is-not-installed>=1"), Requirement("numpy")])
    assert [r.name for r in missing] == ["hsam-test-package-that-is-not-installed"]
    assert startBlockers(missing, problems) == []  # Start installs, lists the models, then trains
    assert startBlockers([], problems) == problems  # once installed, the checks apply


def test_no_organ_checked_is_refused_never_all():
    organs = ["spleen", "liver", "aorta"]
    assert organsToSegment(organs, organs) is None  # all: the model's default
    assert organsToSegment(["aorta", "liver"], organs) == ["liver", "aorta"]
    with pytest.raises(ValueError, match="at least one organ"):
        organsToSegment([], organs)
    scene = new_scene()
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    with pytest.raises(ValueError, match="at least one organ"):
        SegmentLogic().startSegmentation(volume, None, organs=[])


def test_a_case_saved_twice_is_one_case_and_reaches_hsam_train_once(data_dir, tmp_path):
    SegmentLogic()
    scene = new_scene()
    volume, segmentation, _ = btcv_case(scene, data_dir, "case0005", slices=8)
    folder = tmp_path / "training_cases"
    first = addTrainingCase(volume, segmentation, folder)
    again = addTrainingCase(volume, segmentation, folder)  # corrected and saved again: the same case, updated
    assert again == first and len(readManifest(folder)) == 1 and len(list(folder.iterdir())) == 2
    assert takePendingTrainingCases(scene) == [(volume, segmentation)]
    assert takePendingTrainingCases(scene) == []  # taken once
    cases = CaseList()
    cases.add(volume, segmentation)
    [(copy, copySegmentation, _)] = loadCaseFiles(folder, scene)  # the saved copy, loaded as other nodes
    with pytest.raises(ValueError, match="same scan as case case0005"):
        cases.add(copy, copySegmentation)  # would otherwise end up as the validation case of itself
    assert len(cases) == 1


def test_scene_closed_during_a_segmentation_cancels_it_at_once(data_dir, tiny_model, tmp_path):
    logic = SegmentLogic()
    logic.tempRoot = str(tmp_path)
    scene = new_scene()
    logic.cancelOnSceneClose(scene)
    volume = load_volume(scene, data_dir / "totalsegmentator_tests" / "example_ct_sm.nii.gz")
    events = []
    job = logic.startSegmentation(volume, None, model=str(tiny_model), device="cpu", progressCallback=events.append)
    while job.poll() and not any(e["event"] == "progress" for e in events):
        time.sleep(0.02)
    assert job.state == ProcessingState.RUNNING, "the run ended before the scene could be closed"
    started = time.monotonic()
    scene.Clear(0)
    assert time.monotonic() - started < 1.0  # no wait for the engine
    job.wait()
    assert job.cancelled and job.sceneClosed and job.error == ""
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0  # no orphan result
    assert not job.workDir.exists()
    logic.stopWatchingScene()
    new_scene_events = []
    scene.AddObserver(scene.StartCloseEvent, lambda *a: new_scene_events.append(1))
    scene.Clear(0)
    assert new_scene_events == [1]  # the logic no longer watches


class LogicThatMustNotList:
    """HSAM Train's widget passes the models it holds: listing them again would start a torch process on the GUI
    thread."""

    def __init__(self, logic):
        self.logic = logic

    def __enter__(self):
        self.logic.listModels = self._refuse
        return self.logic

    def __exit__(self, *exc):
        del self.logic.listModels

    @staticmethod
    def _refuse(*args, **kwargs):
        raise AssertionError("startTraining listed the models although it was given them")


def test_training_writes_its_cases_in_the_background_and_a_closed_scene_leaves_it_resumable(logic, data_dir,
                                                                                            heard):
    models = logic.listModels()
    scene = new_scene()
    logic.cancelOnSceneClose(scene)
    cases = CaseList()
    for name in ("case0005", "case0006"):
        volume, segmentation, _ = btcv_case(scene, data_dir, name, slices=24)
        cases.add(volume, segmentation)
    base = next(b for b in logic.baseModels() if b.id == "tiny-base")
    mapping = logic.suggestMapping(cases, base)
    events = []
    with LogicThatMustNotList(logic):
        started = time.monotonic()
        job = logic.startTraining(cases, mapping, base, "tiny-scene-closed", settings=TrainingSettings(**TINY),
                                  progressCallback=events.append, models=models)
        assert time.monotonic() - started < 5.0
    assert isinstance(job._worker, ThreadWorker)  # the case files are written off the GUI thread
    while job.poll() and not any(e["event"] == "step" for e in events):
        time.sleep(0.05)
    assert job.run.manifest.is_file() and (job.run.folder / "images" / "case0005.nrrd").is_file()
    started = time.monotonic()
    scene.Clear(0)
    assert time.monotonic() - started < 1.0  # the training saves its checkpoint in the background
    job.wait()
    assert job.cancelled and job.sceneClosed and job.error == ""
    assert [run.outputName for run in logic.stoppedRuns()] == ["tiny-scene-closed"]
    assert job.run.stateFile.is_file()
    assert heard == []  # nothing was registered
    logic.discardRun("tiny-scene-closed")
    logic.stopWatchingScene()


def test_a_background_step_stops_at_its_next_check_and_leaves_no_partial_file(tmp_path):
    import threading

    from HSAMSharedLib.thread_worker import InBackground
    from HSAMTrainLib.nrrd_file import writeNrrd

    started, proceed = threading.Event(), threading.Event()

    def write(worker):
        started.set()
        proceed.wait(10)
        writeNrrd(tmp_path / "a.nrrd", np.zeros((4, 8, 8), dtype=np.int16), np.eye(4), checkCancel=worker.checkCancel)

    worker = ThreadWorker(InBackground(write, "Writing a case"))
    worker.start()
    assert started.wait(10) and worker.isRunning()
    worker.cancel()  # Cancel pressed while the file is being written
    proceed.set()
    assert worker.wait(10) == 3 and worker.errorText() == ""  # the engine's "stopped by request" code
    assert list(tmp_path.iterdir()) == []  # the partial file is gone, no final one was made
    failing = ThreadWorker(InBackground(lambda w: writeNrrd(tmp_path / "b.nrrd", np.zeros((2, 2)), np.eye(4)),
                                        "Writing a 2D array"))
    failing.start()
    assert failing.wait(10) == 1 and "Writing a 2D array failed: a 3D scalar volume is needed" in failing.errorText()
