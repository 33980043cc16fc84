"""HSAM Segment's self-test, which HSAMSegment.py imports for Slicer to find (docs/slicer.md). A GUI part: the
package's ``__init__`` does not import it."""
import os
import time

import qt
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from HSAMSharedLib import ProcessingState
from HSAMSharedLib.module_widget import MODELS_FOLDER_SETTING
from HSAMSharedLib.self_test_support import (
    abdomenLikeVolume,
    buildTinyTestModel,
    moduleFile,
    preservedSettings,
    processEventsWhile,
    runTests,
    skipUnlessPackagesInstalled,
)

from .segment_logic import SegmentLogic


class HSAMSegmentTest(ScriptedLoadableModuleTest):
    """The module's whole flow on a small generated CT-like volume with a tiny random-weight model (real engine
    code, seconds on a CPU): logic, cancel, the widget's Segment organs button and organ choice, and a scene closed
    while a segmentation runs. Skipped, with a message, when HSAM's packages are not installed (it installs
    nothing); every setting it changes is restored. Not registered as a ctest (see CMakeLists.txt): it needs
    PyTorch, which build machines do not have."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        runTests(self, [self.test_HSAMSegment_flow, self.test_HSAMSegment_scene_closed_during_a_run])

    def prepareModel(self):
        skipUnlessPackagesInstalled(self)
        home = os.path.join(slicer.util.tempDirectory("HSAMSegmentTest"), "home")
        self.delayDisplay("Building a tiny model")
        engine = SegmentLogic().engine
        engine.modelsHome = None
        buildTinyTestModel(engine, os.path.join(home, "models", "hsam-test-tiny", "1"))
        return home

    def widgetOnModel(self, home):
        """The module's widget, listing the models of ``home`` (through the setting, as the user would set it)."""
        widget = slicer.modules.hsamsegment.widgetRepresentation().self()
        self.userDevice = widget.ui.deviceSelector.currentText  # put back before the settings are restored
        qt.QSettings().setValue(MODELS_FOLDER_SETTING, home)
        widget.refreshModels()
        processEventsWhile(lambda: widget._modelListing is not None)
        widget.ui.modelSelector.currentIndex = widget.ui.modelSelector.findData("hsam-test-tiny")
        widget.ui.deviceSelector.currentText = "cpu"
        return widget

    def test_HSAMSegment_flow(self):
        home = self.prepareModel()
        modelDir = os.path.join(home, "models", "hsam-test-tiny", "1")
        logic = moduleFile("HSAMSegment").HSAMSegmentLogic()
        logic.setModelsHome(home)
        volume = abdomenLikeVolume()

        self.delayDisplay("Segmenting with the logic")
        segmentation = logic.process(volume, None, model=modelDir, device="cpu")
        names = [segmentation.GetSegmentation().GetNthSegment(i).GetName()
                 for i in range(segmentation.GetSegmentation().GetNumberOfSegments())]
        self.assertEqual(names, ["spleen", "right kidney", "left kidney", "gallbladder", "liver", "stomach",
                                 "aorta", "pancreas"])

        self.delayDisplay("Cancelling a run")
        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
        events = []
        job = logic.startSegmentation(volume, None, model=modelDir, device="cpu", progressCallback=events.append)
        while job.poll() and not any(e["event"] == "progress" for e in events):
            time.sleep(0.05)
        job.cancel()
        job.wait()
        self.assertTrue(job.cancelled)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)

        with preservedSettings([moduleFile("HSAMSegment").DEVICE_SETTING, MODELS_FOLDER_SETTING]):
            widget = self.widgetOnModel(home)
            try:
                self.delayDisplay("Choosing organs: none checked disables Segment organs")
                widget._parameterNode.inputVolume = volume
                widget._parameterNode.outputSegmentation = None
                items = [widget.ui.organsList.item(row) for row in range(widget.ui.organsList.count)]
                for item in items:
                    item.setCheckState(qt.Qt.Unchecked)
                self.assertFalse(widget.ui.applyButton.enabled)
                items[4].setCheckState(qt.Qt.Checked)  # liver
                self.assertTrue(widget.ui.applyButton.enabled)
                self.assertEqual(list(widget._parameterNode.organs), ["liver"])

                self.delayDisplay("Segmenting with the module's button")
                widget.ui.applyButton.click()
                processEventsWhile(lambda: widget.logic.isRunning)
                result = widget._parameterNode.outputSegmentation
                self.assertIsNotNone(result)
                self.assertEqual(result.GetSegmentation().GetNumberOfSegments(), 1)
            finally:
                widget.ui.deviceSelector.currentText = self.userDevice
        widget.refreshModels()
        self.delayDisplay("Test passed")

    def test_HSAMSegment_scene_closed_during_a_run(self):
        home = self.prepareModel()
        with preservedSettings([moduleFile("HSAMSegment").DEVICE_SETTING, MODELS_FOLDER_SETTING]):
            widget = self.widgetOnModel(home)
            try:
                volume = abdomenLikeVolume()
                widget._parameterNode.inputVolume = volume
                widget._parameterNode.outputSegmentation = None
                self.delayDisplay("Closing the scene while a segmentation runs")
                widget.ui.applyButton.click()
                job = widget.logic.job
                processEventsWhile(lambda: job.isActive and job.state != ProcessingState.RUNNING)
                started = time.monotonic()
                slicer.mrmlScene.Clear(0)
                self.assertLess(time.monotonic() - started, 2.0, "closing the scene waited for the job")
                processEventsWhile(lambda: widget.logic.isRunning)
                self.assertTrue(job.cancelled and job.sceneClosed and not job.error)
                self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), 0)
                self.assertIn("scene was closed", widget.ui.statusLog.plainText)
            finally:
                widget.ui.deviceSelector.currentText = self.userDevice
        widget.refreshModels()
        self.delayDisplay("Test passed")
