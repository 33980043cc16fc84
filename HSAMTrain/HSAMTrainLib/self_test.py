"""HSAM Train's self-test, which HSAMTrain.py imports for Slicer to find (docs/slicer.md). A GUI part: the
package's ``__init__`` does not import it."""
import os
import time

import qt
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from HSAMSharedLib.module_widget import MODELS_FOLDER_SETTING
from HSAMSharedLib.self_test_support import (
    abdomenLikeVolume,
    buildTinyTestModel,
    caseFromVolume,
    moduleFile,
    packagesMissingMessage,
    preservedSettings,
    processEventsWhile,
    runTests,
    skipUnlessPackagesInstalled,
)

from .case_list import CaseList
from .training_settings import CUSTOM, FEW_SHOT, RECIPES, TrainingSettings


class HSAMTrainTest(ScriptedLoadableModuleTest):
    """The module's flow on small generated CT-like volumes with a tiny random-weight base model (real engine
    code, a minute or two on a CPU): first use (Start enabled while the packages are missing; installing in either
    module refreshes this module's models), the logic trains and registers a model that HSAM Segment uses, the
    widget starts a run, cancels it (a resumable run) and resumes it to the end, and a scene closed during
    training stops it without waiting and leaves it resumable. Installs nothing (skipped, with a message, when
    HSAM's packages are missing) and restores every setting it changes. Not registered as a ctest (see
    CMakeLists.txt): it needs PyTorch, which build machines do not have."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        runTests(self, [self.test_HSAMTrain_first_use, self.test_HSAMTrain_flow,
                        self.test_HSAMTrain_scene_closed_during_training])

    def widget(self):
        return slicer.modules.hsamtrain.widgetRepresentation().self()

    def prepareHome(self):
        skipUnlessPackagesInstalled(self)
        home = os.path.join(slicer.util.tempDirectory("HSAMTrainTest"), "home")
        self.delayDisplay("Building a tiny base model")
        engine = moduleFile("HSAMTrain").HSAMTrainLogic().engine
        buildTinyTestModel(engine, os.path.join(home, "models", "hsam-test-tiny", "1"))
        return home

    def pairs(self):
        return [(volume, caseFromVolume(volume, volume.GetName()))
                for volume in (abdomenLikeVolume(f"HSAM train case {n}", variant=3 * n) for n in (1, 2))]

    def test_HSAMTrain_first_use(self):
        widget = self.widget()
        widget.cases = CaseList()
        widget.onCasesChanged()
        widget.refreshModels()
        processEventsWhile(lambda: widget._modelListing is not None)
        if widget._missingPackages:
            self.delayDisplay("Packages missing: Start fine-tuning must be enabled (it installs them first)")
            self.assertTrue(widget.ui.applyButton.enabled)
            self.assertIn("installs", widget.ui.problemsLabel.text)
            self.skipTest(packagesMissingMessage() + " (the first-use check above passed; the test does not "
                          "click Start, which would install them)")
        home = self.prepareHome()
        with preservedSettings([MODELS_FOLDER_SETTING]):
            qt.QSettings().setValue(MODELS_FOLDER_SETTING, home)
            self.delayDisplay("HSAM Segment's logic announces installed packages: this module lists again")
            moduleFile("HSAMSegment").HSAMSegmentLogic().notifyModelsChanged("packages installed")
            processEventsWhile(lambda: widget.ui.baseModelSelector.findData("hsam-test-tiny") < 0, timeout=300)
        widget.refreshModels()
        processEventsWhile(lambda: widget._modelListing is not None)
        self.delayDisplay("Test passed")

    def test_HSAMTrain_flow(self):
        home = self.prepareHome()
        logic = moduleFile("HSAMTrain").HSAMTrainLogic()
        logic.setModelsHome(home)
        pairs = self.pairs()
        cases = CaseList()
        for volume, segmentation in pairs:
            cases.add(volume, segmentation)
        with self.assertRaises(ValueError):  # one scan is one case: never both training and validation
            cases.add(pairs[0][0], caseFromVolume(pairs[0][0], "second segmentation"))
        base = next(b for b in logic.baseModels() if b.id == "hsam-test-tiny")
        mapping = logic.suggestMapping(cases, base)
        self.assertEqual(mapping.targetOf("liver"), "liver")

        self.delayDisplay("Fine-tuning with the logic")
        settings = TrainingSettings(recipe=CUSTOM, epochs=2, sliceFraction=0.25, batchSize=2, validationSlices=4,
                                    device="cpu")
        result = logic.train(cases, mapping, base, "hsam-test-finetuned", settings=settings)
        self.assertTrue(os.path.isfile(os.path.join(str(result.path), "model.json")))
        self.assertIn("liver", result.comparison["organs"])
        segmentLogic = moduleFile("HSAMSegment").HSAMSegmentLogic()
        segmentLogic.setModelsHome(home)
        segmentation = segmentLogic.process(pairs[0][0], None, model="hsam-test-finetuned", device="cpu")
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 8)

        with preservedSettings([MODELS_FOLDER_SETTING, moduleFile("HSAMTrain").DEVICE_SETTING]):
            widget = self.startWidgetRun(home, pairs, "hsam-test-widget")
            try:
                processEventsWhile(lambda: widget.logic.isRunning and not widget.logic.job.progress.step)
                self.delayDisplay("Cancel: the run stops with a checkpoint and can be resumed")
                widget.ui.applyButton.click()  # Cancel
                processEventsWhile(lambda: widget.logic.isRunning)
                self.assertTrue(widget.logic.job.cancelled)
                self.assertTrue(widget.logic.job.run.stateFile.is_file())
                self.assertEqual(widget.ui.resumeRunSelector.currentText, "hsam-test-widget")
                widget.ui.resumeButton.click()
                processEventsWhile(lambda: widget.logic.isRunning)
                self.assertTrue(widget.logic.job.succeeded, widget.logic.job.error)
                self.assertEqual(widget._plot.table.GetTable().GetNumberOfRows(), 3)
                for node in widget._plot.nodes():  # the panel's plot is not part of the user's scene
                    self.assertFalse(node.GetSaveWithScene())
                    self.assertTrue(node.GetHideFromEditors())
                segmentParameters = moduleFile("HSAMSegment").HSAMSegmentLogic().getParameterNode()
                self.assertEqual(segmentParameters.model, "hsam-test-widget")
            finally:
                widget.ui.deviceSelector.currentText = self.userDevice
        widget.refreshModels()
        self.delayDisplay("Test passed")

    def test_HSAMTrain_scene_closed_during_training(self):
        home = self.prepareHome()
        with preservedSettings([MODELS_FOLDER_SETTING, moduleFile("HSAMTrain").DEVICE_SETTING]):
            widget = self.startWidgetRun(home, self.pairs(), "hsam-test-scene-closed")
            try:
                job = widget.logic.job
                processEventsWhile(lambda: job.isActive and not job.progress.step)
                self.delayDisplay("Closing the scene during training: no wait, the run stays resumable")
                started = time.monotonic()
                slicer.mrmlScene.Clear(0)
                self.assertLess(time.monotonic() - started, 2.0, "closing the scene waited for the training")
                processEventsWhile(lambda: widget.logic.isRunning)
                self.assertTrue(job.cancelled and job.sceneClosed and not job.error)
                self.assertIn("hsam-test-scene-closed", [run.outputName for run in widget.logic.stoppedRuns()])
                self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLPlotChartNode"), 0)
                widget.logic.discardRun("hsam-test-scene-closed")
            finally:
                widget.ui.deviceSelector.currentText = self.userDevice
        widget.refreshModels()
        self.delayDisplay("Test passed")

    def startWidgetRun(self, home, pairs, name):
        """The module's widget on ``home``'s models with ``pairs`` as cases, after clicking Start fine-tuning."""
        widget = self.widget()
        self.userDevice = widget.ui.deviceSelector.currentText  # put back before the settings are restored
        qt.QSettings().setValue(MODELS_FOLDER_SETTING, home)
        widget.refreshModels()
        processEventsWhile(lambda: widget._modelListing is not None)
        widget.cases = CaseList()
        for volume, segmentation in pairs:
            widget.addCase(volume, segmentation)
        widget.ui.baseModelSelector.currentIndex = widget.ui.baseModelSelector.findData("hsam-test-tiny")
        widget.ui.deviceSelector.currentText = "cpu"
        recipes = [recipe for recipe, _text in RECIPES]
        widget.ui.recipeSelector.currentIndex = recipes.index(FEW_SHOT)
        self.assertTrue(widget.ui.epochsSpinBox.isHidden())  # the preset decides it
        self.assertEqual(widget.currentSettings().engineOptions()[:2], ["--preset", FEW_SHOT])
        self.assertIn("--lora-blocks 2", widget.ui.recipeDescriptionLabel.text)
        widget.ui.recipeSelector.currentIndex = recipes.index(CUSTOM)  # a short run: the panel's settings
        self.assertFalse(widget.ui.epochsSpinBox.isHidden())
        pn = widget._parameterNode
        pn.outputName, pn.epochs, pn.sliceFraction, pn.batchSize, pn.freezeEncoder = name, 3, 0.25, 2, True
        self.delayDisplay("Start fine-tuning with the module's button")
        widget.ui.applyButton.click()
        self.assertTrue(widget.logic.isRunning, widget.ui.statusLog.plainText)
        return widget
