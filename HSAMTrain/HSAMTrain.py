"""HSAM Train: few-shot fine-tuning of H-SAM models on a site's own annotated cases, in a background process.

The widget only wires the GUI to the logic; everything that does work lives in HSAMTrainLib (GUI-free, so it runs
in scripts and in tests without the Slicer application), which builds on HSAMSharedLib, the layer both modules
share (it ships with HSAM Segment). The self-test is HSAMTrainLib/self_test.py."""
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Decimals, SingleStep, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleLogic

from HSAMSharedLib import ProcessingState, deviceChoices
from HSAMSharedLib.job import ACTIVE_STATES
from HSAMSharedLib.module_widget import EngineModuleWidget
from HSAMSharedLib.training_cases import takePendingTrainingCases
from HSAMTrainLib import (
    SCENE_SETTINGS,
    CaseList,
    TrainingPlot,
    TrainLogic,
    withSettings,
)
from HSAMTrainLib.base_models import baseModels
from HSAMTrainLib.case_tables import CaseTables
from HSAMTrainLib.comparison import comparisonLines
from HSAMTrainLib.input_check import startBlockers
from HSAMTrainLib.settings_panel import SettingsPanel
from HSAMTrainLib.self_test import HSAMTrainTest  # noqa: F401 (Slicer runs the module's self-test by this name)

import HSAMSegment

DOCUMENTATION_URL = "https://github.com/hsam-slicer/SlicerHSAM#3d-slicer-hsam-train"
DEVICE_SETTING = "HSAMTrain/device"


class HSAMTrain(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("HSAM Train")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["HSAMSegment"]
        self.parent.contributors = ["HSAM contributors"]
        self.parent.helpText = _(
            "Fine-tunes an H-SAM model on a few of your own annotated cases (for example results of HSAM Segment "
            "that you corrected), in a background process with a live loss and Dice plot; Cancel saves a "
            "checkpoint and Resume continues. The new model is registered and selected in HSAM Segment. "
            '<a href="{url}">Documentation and tutorial</a>.').format(url=DOCUMENTATION_URL)
        self.parent.acknowledgementText = _(
            "If you use this module, please cite: Z. Cheng, Q. Wei, H. Zhu, Y. Wang, L. Qu, W. Shao, Y. Zhou, "
            "\"Unleashing the Potential of SAM for Medical Adaptation via Hierarchical Decoding\", CVPR 2024.")


def parameterType(setting):
    """A setting's type in the parameter node, with the range, step and decimals of the engine's option table, which
    the parameter node puts on the spin box it binds."""
    extras = [WithinRange(*setting.range)] if setting.range else []
    extras += [SingleStep(setting.step)] if setting.step else []
    extras += [Decimals(setting.decimals)] if setting.decimals is not None else []
    return Annotated[(setting.type, *extras)] if extras else setting.type


@parameterNodeWrapper
@withSettings(SCENE_SETTINGS, parameterType)
class HSAMTrainParameterNode:
    """Per-scene choices (saved with the scene), and one member per entry of SCENE_SETTINGS. The device is a
    per-user setting; the cases are listed in the panel (they are nodes of the scene)."""

    volume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    baseModel: str = ""
    outputName: str = ""


class HSAMTrainWidget(EngineModuleWidget, CaseTables, SettingsPanel):
    """Parameter node wiring, job and model list polling, Cancel and stopping a run when Slicer closes come from
    EngineModuleWidget (shared with HSAM Segment); the cases and label mapping tables from CaseTables; the settings
    section from SettingsPanel."""

    def __init__(self, parent=None) -> None:
        EngineModuleWidget.__init__(self, parent)
        self.cases = CaseList()
        self.mapping = None
        self._bases = []
        self._plot = None
        self._plotViews = []
        self._missingPackages = []  # the engine's packages not installed: Start installs them first
        self._startWhenListed = False  # Start installed the packages: train once the models are listed

    def setup(self) -> None:
        self.setupUi("UI/HSAMTrain.ui", HSAMTrainLogic())
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAboutToBeRemovedEvent, self.onNodeRemoved)

        self.setupSettings()
        self.ui.deviceSelector.addItems(deviceChoices())
        self.ui.deviceSelector.currentText = slicer.util.settingsValue(DEVICE_SETTING, "auto")
        self.ui.deviceSelector.currentTextChanged.connect(self.onDeviceChanged)

        self.plotWidgets = []  # training loss and validation Dice: two charts, each with its own y-axis
        for _chart in range(2):
            plotWidget = slicer.qMRMLPlotWidget()
            plotWidget.setMinimumHeight(150)
            plotWidget.setMRMLScene(slicer.mrmlScene)
            self.ui.plotFrame.layout().addWidget(plotWidget)
            self.plotWidgets.append(plotWidget)

        self.ui.addCaseButton.clicked.connect(self.onAddCaseButton)
        self.ui.addFolderButton.clicked.connect(self.onAddFolderButton)
        self.ui.removeCaseButton.clicked.connect(self.onRemoveCaseButton)
        self.ui.moveCaseUpButton.clicked.connect(lambda: self.onMoveCase(-1))
        self.ui.moveCaseDownButton.clicked.connect(lambda: self.onMoveCase(1))
        self.ui.baseModelSelector.currentIndexChanged.connect(self.onBaseModelChanged)
        self.ui.refreshModelsButton.clicked.connect(self.refreshModels)
        self.ui.applyButton.clicked.connect(self.onApplyButton)
        self.ui.resumeButton.clicked.connect(self.onResumeButton)
        self.ui.discardRunButton.clicked.connect(self.onDiscardRunButton)

        self.initializeParameterNode()
        self.refreshModels()
        self.refreshStoppedRuns()
        self.takePendingCases()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.refreshStoppedRuns()
        self.takePendingCases()

    def takePendingCases(self) -> None:
        """Pairs HSAM Segment's "Add to training cases" marked in the scene since the panel was last shown."""
        for volume, segmentation in takePendingTrainingCases(slicer.mrmlScene):
            try:
                self.addCase(volume, segmentation)
                self.addLog(_("Added case {name} (from HSAM Segment).").format(name=volume.GetName()))
            except ValueError as exc:  # already a case
                self.addLog(str(exc))

    def quitQuestion(self) -> str:
        return _("A fine-tuning run is in progress. Quit Slicer anyway?\n\nTraining stops after saving a "
                 "checkpoint (on a CPU this can take a minute or two); Resume in HSAM Train continues it later.")

    def onSceneStartClose(self, caller, event) -> None:
        """The logic has cancelled a running training (it saves a checkpoint in the background; Resume
        continues it): nothing here waits for it."""
        self.setParameterNode(None)
        self.cases = CaseList()  # their nodes go with the scene
        self._plot = None
        self._plotViews = []

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeRemoved(self, caller, event, node) -> None:
        if self.cases.removeCasesOf(node):
            self.onCasesChanged()

    def onSceneEndClose(self, caller, event) -> None:
        self.onCasesChanged()
        self.refreshStoppedRuns()
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def currentBase(self):
        baseId = self.ui.baseModelSelector.itemData(self.ui.baseModelSelector.currentIndex)
        return next((b for b in self._bases if b.id == baseId), None)

    # Processing state -> GUI

    def showState(self, state) -> None:
        busy = state in ACTIVE_STATES
        texts = {ProcessingState.STARTING: _("Exporting the cases..."), ProcessingState.RUNNING: _("Cancel"),
                 ProcessingState.IMPORTING: _("Registering the model..."),
                 ProcessingState.CANCELLING: _("Cancelling (saving a checkpoint)...")}
        self.ui.applyButton.text = texts.get(state, _("Start fine-tuning"))
        self.ui.applyButton.toolTip = _("Stop training; the last checkpoint is kept for Resume") \
            if state == ProcessingState.RUNNING else _("Export the cases and start training in the background")
        problems = startBlockers(self._missingPackages, self.updateChecks()) if not busy else []
        if not busy and self._missingPackages:  # first use: Start installs, lists the models, then trains
            self.ui.problemsLabel.text = _(
                "Start fine-tuning first installs the Python packages HSAM needs ({names}), after asking; then "
                "the base models are listed.").format(names=", ".join(r.name for r in self._missingPackages))
        self.ui.applyButton.enabled = state == ProcessingState.RUNNING or (not busy and not problems)
        for section in (self.ui.casesCollapsibleButton, self.ui.modelCollapsibleButton,
                        self.ui.settingsCollapsibleButton):
            section.enabled = not busy
        hasStoppedRun = self.ui.resumeRunSelector.count > 0
        self.ui.resumeButton.enabled = not busy and hasStoppedRun
        self.ui.discardRunButton.enabled = not busy and hasStoppedRun
        self.ui.progressBar.visible = busy

    def updateChecks(self) -> list:
        """Show what would stop a run, and the time estimate; returns the problems."""
        base = self.currentBase()
        if self._parameterNode is None or self.mapping is None or base is None:
            missing = _("Add cases and choose a base model.")
            self.ui.problemsLabel.text = missing
            self.ui.estimateLabel.text = ""
            return [missing]
        problems = self.logic.problems(list(self.cases), self.mapping, self._parameterNode.outputName.strip(),
                                       self._models)
        self.ui.problemsLabel.text = "\n".join(problems)
        settings = self.currentSettings()
        self.ui.estimateLabel.text = _("Run time: {estimate}, on {device}").format(
            estimate=self.logic.estimate(list(self.cases), settings, base).describe(),
            device=self.logic.deviceKind(settings))
        return problems

    def onJobEvent(self, event) -> None:
        kind = event.get("event")
        job = self.logic.job
        if kind in ("step", "epoch", "done") and job is not None:
            progress = job.progress
            self.ui.progressBar.maximum = max(1, progress.totalSteps)
            self.ui.progressBar.value = progress.step
            self.ui.progressLabel.text = progress.statusText()
            if kind == "epoch" and self._plot is not None:
                self._plot.update(progress)
        else:
            self.showJobEvent(event)

    def addLog(self, text: str) -> None:
        self.ui.statusLog.appendPlainText(text)

    # Base model and label mapping

    def showModelInfo(self, text: str) -> None:
        self.ui.baseModelInfoLabel.text = text

    def refreshModels(self) -> None:
        self._missingPackages = self.logic.missingPackages()  # cheap: package metadata, nothing imported
        EngineModuleWidget.refreshModels(self)

    def onModelsNotListed(self, error: str) -> None:
        self.showModelInfo(_("Models could not be listed ({error}). Start fine-tuning installs the missing "
                             "packages.").format(error=error))
        if self._startWhenListed:
            self._startWhenListed = False
            self.addLog(_("The base models could not be listed, so training did not start: {error}").format(
                error=error))
        self.updateGui()

    def onModelsListed(self) -> None:
        self._bases = baseModels(self._models)
        selector = self.ui.baseModelSelector
        selector.blockSignals(True)
        selector.clear()
        for base in self._bases:
            selector.addItem(base.id if base.isModel else base.title, base.id)
        wanted = self._parameterNode.baseModel if self._parameterNode else ""
        selector.currentIndex = max(0, selector.findData(wanted))
        selector.blockSignals(False)
        self.onBaseModelChanged()
        if self._startWhenListed:  # Start installed the packages: go on to train, or say what is still needed
            self._startWhenListed = False
            problems = self.updateChecks()
            if problems:
                self.addLog(_("The base models are listed. Before training can start:") + "\n" + "\n".join(problems))
            else:
                self.startTraining()

    def onBaseModelChanged(self, index=None) -> None:
        base = self.currentBase()
        if base is not None and self._parameterNode is not None and self._parameterNode.baseModel != base.id:
            self._parameterNode.baseModel = base.id
        if base is not None and self._parameterNode is not None and not self._parameterNode.outputName:
            self._parameterNode.outputName = f"{base.id}-finetuned"
        if base is None:
            self.ui.baseModelInfoLabel.text = _("No model or base weights are available.")
        elif base.isModel:
            self.ui.baseModelInfoLabel.text = _("Fine-tunes {title}; its classes: {classes}.").format(
                title=base.title, classes=", ".join(c["name"] for c in base.classes))
        else:
            self.ui.baseModelInfoLabel.text = _("A new model: its classes are the segments you map to new classes.")
        self.remap()

    def onDeviceChanged(self, device: str) -> None:
        qt.QSettings().setValue(DEVICE_SETTING, device)
        self.updateGui()

    # Start / Cancel, Resume

    def onApplyButton(self) -> None:
        if self.cancelRunningJob():
            return
        with slicer.util.tryWithErrorDisplay(_("Fine-tuning could not start."), waitCursor=True):
            installing = bool(self.logic.missingPackages())
            if not self.ensureRequirements():
                return
            if installing or self._modelsListError:
                # first use: the models can only be listed now; training starts once they are (onModelsListed)
                self._startWhenListed = True
                self.addLog(_("Listing the base models; training starts when they are listed."))
                self.refreshModels()
                return
        self.startTraining()

    def startTraining(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Fine-tuning could not start."), waitCursor=True):
            self.cases.refreshSummaries()  # segmentations may have been edited since they were added
            self.onCasesChanged()
            name = self._parameterNode.outputName.strip()
            if name and (self.logic.runsFolder / name).exists():
                if not slicer.util.confirmOkCancelDisplay(
                        _("A stopped run named '{name}' exists. Discard it and start again?").format(name=name)):
                    return
                self.logic.discardRun(name)
            self.startRunDisplay(name)
            self.logic.startTraining(list(self.cases), self.mapping, self.currentBase(), name,
                                     settings=self.currentSettings(), progressCallback=self.onJobEvent,
                                     models=self._models)
            self._jobTimer.start()
        self.updateGui()

    def onResumeButton(self) -> None:
        name = self.ui.resumeRunSelector.currentText
        with slicer.util.tryWithErrorDisplay(_("The run could not be resumed."), waitCursor=True):
            if not self.ensureRequirements():
                return
            self.startRunDisplay(name)
            job = self.logic.resumeTraining(name, progressCallback=self.onJobEvent)
            self._plot.update(job.progress)  # the curve of the epochs before the stop
            self._jobTimer.start()
        self.updateGui()

    def onDiscardRunButton(self) -> None:
        name = self.ui.resumeRunSelector.currentText
        if name and slicer.util.confirmOkCancelDisplay(
                _("Delete the stopped run '{name}' (its exported cases and checkpoint)?").format(name=name)):
            self.logic.discardRun(name)
            self.refreshStoppedRuns()

    def refreshStoppedRuns(self) -> None:
        self.ui.resumeRunSelector.clear()
        self.ui.resumeRunSelector.addItems([run.outputName for run in self.logic.stoppedRuns()])
        self.updateGui()

    def startRunDisplay(self, name: str) -> None:
        """A clean log, progress and plot for a run, shown at once."""
        self.ui.statusLog.clear()
        self.ui.progressLabel.text = ""
        if self._plot is not None:
            self._plot.remove()
        self._plot = TrainingPlot(slicer.mrmlScene, _("HSAM training {name}").format(name=name))
        if len(self._plotViews) != 2 or any(view.GetScene() is None for view in self._plotViews):
            self._plotViews = [self._plot.viewNode(slicer.mrmlScene) for _view in range(2)]
        for view, chart, plotWidget in zip(self._plotViews, self._plot.charts, self.plotWidgets):
            view.SetPlotChartNodeID(chart.GetID())
            plotWidget.setMRMLPlotViewNode(view)
        for section in (self.ui.casesCollapsibleButton, self.ui.modelCollapsibleButton,
                        self.ui.settingsCollapsibleButton):
            section.collapsed = True  # disabled during the run: the progress and plots move up into view
        self.ui.progressCollapsibleButton.collapsed = False
        self.showState(ProcessingState.STARTING)
        slicer.app.processEvents()

    def _pollJob(self) -> None:
        job = self.endedJob()
        if job is None:
            return
        if job.state == ProcessingState.FAILED:
            slicer.util.errorDisplay(_("Fine-tuning failed:") + "\n\n" + job.error)
        elif job.cancelled:
            self.addLog(_("Stopped; the last checkpoint is kept. Choose the run under 'Stopped run' and click "
                          "Resume to continue."))
        elif job.succeeded:
            self.onTrainingFinished(job)
        self.refreshStoppedRuns()

    def onTrainingFinished(self, job) -> None:
        modelId = job.run.outputName
        self.logic.selectInSegmentModule(modelId)  # both modules list it already: the job told them
        message = _("Model '{model}' is registered in\n{path}\nand selected in HSAM Segment.").format(
            model=modelId, path=job.modelPath)
        slicer.util.infoDisplay(message + "\n\n" + "\n".join(comparisonLines(job.comparison or {})))


class HSAMTrainLogic(ScriptedLoadableModuleLogic, TrainLogic):
    """Fine-tune with the hsam engine, with or without the GUI:

        logic = HSAMTrainLogic()
        cases = HSAMTrainLib.CaseList()
        cases.add(volume1, segmentation1)
        cases.add(volume2, segmentation2)  # the second case validates
        base = next(b for b in logic.baseModels() if b.id == "hsam-abdomen-ct")
        result = logic.train(cases, logic.suggestMapping(cases, base), base, "my-model", settings=TrainingSettings())

    The work is done by HSAMTrainLib.TrainLogic; this class adds the module's parameter node."""

    def __init__(self) -> None:
        # once: ScriptedLoadableModuleLogic.__init__ calls super().__init__(), which is TrainLogic.__init__ here
        super().__init__()

    def getParameterNode(self):
        return HSAMTrainParameterNode(super().getParameterNode())

    @staticmethod
    def selectInSegmentModule(modelId: str) -> None:
        """Make HSAM Segment use the model: its parameter node names it (its panel selects the model when it
        next lists its models, which registering the model triggered)."""
        HSAMSegment.HSAMSegmentLogic().getParameterNode().model = modelId
