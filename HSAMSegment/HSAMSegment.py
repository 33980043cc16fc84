"""HSAM Segment: organ segmentation of CT volumes with H-SAM, run by the hsam engine in a background process.

The widget only wires the GUI to the logic; everything that does work lives in HSAMSegmentLib and in
HSAMSharedLib, the layer both modules share (GUI-free, so it runs in scripts and in tests without the Slicer
application). The self-test is HSAMSegmentLib/self_test.py."""
import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleLogic

from HSAMSegmentLib import SegmentLogic
from HSAMSegmentLib.organ_tables import loadOrganTerminology
from HSAMSegmentLib.segment_logic import organsToSegment
from HSAMSegmentLib.self_test import HSAMSegmentTest  # noqa: F401 (Slicer runs the module's self-test by this name)
from HSAMSharedLib import (
    ProcessingState,
    addTrainingCase,
    deviceChoices,
    findModel,
    segmentationModels,
)
from HSAMSharedLib.dependencies import packageInfo, reinstallRequirements
from HSAMSharedLib.diagnostics import DiagnosticsCollector
from HSAMSharedLib.job import ACTIVE_STATES
from HSAMSharedLib.module_widget import MODELS_FOLDER_SETTING, EngineModuleWidget
from HSAMSharedLib.training_cases import CASES_FOLDER

DOCUMENTATION_URL = "https://github.com/hsam-slicer/SlicerHSAM#readme"
DEVICE_SETTING = "HSAMSegment/device"


class HSAMSegment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("HSAM Segment")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["HSAM contributors"]
        self.parent.helpText = _(
            "Segments abdominal organs (spleen, kidneys, gallbladder, liver, stomach, aorta, pancreas) in CT with "
            "H-SAM, a SAM-based model that can be fine-tuned on a few of your own cases. The model runs in a "
            "background process: Slicer stays usable and the run can be cancelled. "
            '<a href="{url}">Documentation, tutorial and troubleshooting</a>.').format(url=DOCUMENTATION_URL)
        self.parent.acknowledgementText = _(
            "If you use this module, please cite: Z. Cheng, Q. Wei, H. Zhu, Y. Wang, L. Qu, W. Shao, Y. Zhou, "
            "\"Unleashing the Potential of SAM for Medical Adaptation via Hierarchical Decoding\", CVPR 2024. "
            "LiteMedSAM (bowang-lab/MedSAM) and Segment Anything (Meta) weights are Apache-2.0.")
        slicer.app.connect("startupCompleted()", self.onStartupCompleted)

    def onStartupCompleted(self):
        """Offer the model's organs in the terminology selector (e.g. when adding a segment by hand)."""
        loadOrganTerminology(slicer.modules.terminologies.logic())


@parameterNodeWrapper
class HSAMSegmentParameterNode:
    """Per-scene choices (saved with the scene). Device and models folder are per-user settings instead."""

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    model: str = ""
    organs: list[str]  # empty (the default): every organ of the model; reset when the model changes
    postprocess: bool = True


class HSAMSegmentWidget(EngineModuleWidget):
    """Parameter node wiring, job and model list polling and Cancel come from EngineModuleWidget (shared with HSAM
    Train)."""

    def __init__(self, parent=None) -> None:
        EngineModuleWidget.__init__(self, parent)
        self._organsProblem = ""  # why Segment organs is disabled by the organ choice ("" when it is not)

    def setup(self) -> None:
        self.setupUi("UI/HSAMSegment.ui", HSAMSegmentLogic())
        modelsFolder = slicer.util.settingsValue(MODELS_FOLDER_SETTING, "")
        self.logic.setModelsHome(modelsFolder)
        self.ui.modelsFolderSelector.currentPath = modelsFolder

        self.ui.deviceSelector.addItems(deviceChoices())
        self.ui.deviceSelector.currentText = slicer.util.settingsValue(DEVICE_SETTING, "auto")
        self.ui.deviceSelector.currentTextChanged.connect(
            lambda device: qt.QSettings().setValue(DEVICE_SETTING, device))
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                                   self.ui.show3DButton.setSegmentationNode)
        self.ui.applyButton.clicked.connect(self.onApplyButton)
        self.ui.modelSelector.currentIndexChanged.connect(self.onModelChanged)
        self.ui.refreshModelsButton.clicked.connect(self.refreshModels)
        self.ui.organsList.itemChanged.connect(self.onOrgansChanged)
        self.ui.allOrgansButton.clicked.connect(lambda: self.setAllOrgansChecked(True))
        self.ui.noOrgansButton.clicked.connect(lambda: self.setAllOrgansChecked(False))
        self.ui.editButton.clicked.connect(self.onEditButton)
        self.ui.addTrainingCaseButton.clicked.connect(self.onAddTrainingCaseButton)
        self.ui.modelsFolderSelector.currentPathChanged.connect(self.onModelsFolderChanged)
        self.ui.openModelsFolderButton.clicked.connect(self.onOpenModelsFolderButton)
        self.ui.clearModelsButton.clicked.connect(self.onClearModelsButton)
        self.ui.packageInfoButton.clicked.connect(self.onPackageInfoButton)
        self.ui.diagnosticsButton.clicked.connect(self.onDiagnosticsButton)
        self.ui.reinstallButton.clicked.connect(self.onReinstallButton)

        self.initializeParameterNode()
        self.refreshModels()

    def enter(self) -> None:
        self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.inputVolume = firstVolume

    # Processing state -> GUI

    def showState(self, state) -> None:
        busy = state in ACTIVE_STATES
        texts = {ProcessingState.STARTING: _("Starting..."), ProcessingState.RUNNING: _("Cancel"),
                 ProcessingState.IMPORTING: _("Importing the result..."),
                 ProcessingState.CANCELLING: _("Cancelling...")}
        self.ui.applyButton.text = texts.get(state, _("Segment organs"))
        self.ui.applyButton.toolTip = _("Stop the segmentation") if state == ProcessingState.RUNNING else \
            _("Segment the organs in the input volume")
        # No model listed (e.g. packages not installed yet) still allows a start: it installs them first.
        ready = bool(self._parameterNode and self._parameterNode.inputVolume) and not self._organsProblem
        self.ui.applyButton.enabled = state == ProcessingState.RUNNING or (not busy and ready)
        if not busy and self._organsProblem:
            self.ui.applyButton.toolTip = self._organsProblem
        self.ui.inputsCollapsibleButton.enabled = not busy
        self.ui.outputsCollapsibleButton.enabled = not busy
        self.ui.advancedCollapsibleButton.enabled = not busy
        self.ui.progressBar.visible = busy
        output = self._parameterNode.outputSegmentation if self._parameterNode else None
        hasResult = bool(output and output.GetSegmentation().GetNumberOfSegments())
        self.ui.editButton.enabled = not busy and hasResult
        self.ui.addTrainingCaseButton.enabled = not busy and hasResult

    def onJobEvent(self, event) -> None:
        if event.get("event") == "progress":
            self.ui.progressBar.maximum = max(1, int(event.get("total") or 1))
            self.ui.progressBar.value = int(event.get("done") or 0)
            self.ui.progressBar.format = "{} %v / %m".format(event.get("stage") or "")
        else:
            self.showJobEvent(event)

    def addLog(self, text: str) -> None:
        self.ui.statusLog.appendPlainText(text)

    # Segment organs / Cancel

    def onApplyButton(self) -> None:
        if self.cancelRunningJob():
            return
        with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
            if not self.ensureRequirements():
                return
            model = findModel(self._models, self._parameterNode.model)
            download = None
            if model is not None and not (model.ready or model.needsDownload):
                raise RuntimeError(_("Model '{model}' cannot be used on this computer ({state}): choose another "
                                     "model.").format(model=model.id, state=model.state))
            if model is not None and model.needsDownload:
                if not slicer.util.confirmOkCancelDisplay(
                        _("Model '{model}' is not on this computer yet. Download it now ({size})?").format(
                            model=model.id, size=model.description())):
                    return
                download = model.id
            self.ui.statusLog.clear()
            self.showState(ProcessingState.STARTING)
            slicer.app.processEvents()
            pn = self._parameterNode
            self.logic.startSegmentation(pn.inputVolume, pn.outputSegmentation, model=pn.model or None,
                                         device=self.ui.deviceSelector.currentText, organs=pn.organs or None,
                                         postprocess=pn.postprocess, show3D=True, downloadModel=download,
                                         progressCallback=self.onJobEvent)
            self._jobTimer.start()
        self.updateGui()

    def _pollJob(self) -> None:
        job = self.endedJob()
        if job is None:
            return
        if job.state == ProcessingState.FAILED:
            slicer.util.errorDisplay(_("Segmentation failed:") + "\n\n" + job.error)
        elif job.succeeded and self._parameterNode is not None:
            self._parameterNode.outputSegmentation = job.outputSegmentation
        elif job.cancelled and job.sceneClosed:
            self.addLog(_("The scene was closed: the segmentation was cancelled."))
        self.updateGui()

    # Models

    def showModelInfo(self, text: str) -> None:
        self.ui.modelInfoLabel.text = text

    def onModelsNotListed(self, error: str) -> None:
        self.showModelInfo(_("Models could not be listed ({error}). Segment organs installs the missing "
                             "packages.").format(error=error))

    def onModelsListed(self) -> None:
        self.ui.modelSelector.blockSignals(True)
        self.ui.modelSelector.clear()
        for model in segmentationModels(self._models):
            self.ui.modelSelector.addItem(model.id, model.id)
            self.ui.modelSelector.setItemData(self.ui.modelSelector.count - 1, model.description(),
                                              qt.Qt.ToolTipRole)
        wanted = self._parameterNode.model if self._parameterNode else ""
        self.ui.modelSelector.currentIndex = max(0, self.ui.modelSelector.findData(wanted))
        self.ui.modelSelector.blockSignals(False)
        self.onModelChanged()

    def onModelChanged(self, index=None) -> None:
        modelId = self.ui.modelSelector.itemData(self.ui.modelSelector.currentIndex)
        model = findModel(self._models, modelId)
        self.ui.modelInfoLabel.text = model.description() if model else _("No segmentation model is available.")
        if self._parameterNode is not None and modelId and self._parameterNode.model != modelId:
            # another model: its own organs, all of them (a choice made for the previous model does not carry over)
            self._parameterNode.organs = []
            self._parameterNode.model = modelId
        self._organsProblem = ""
        self.ui.organsList.blockSignals(True)
        self.ui.organsList.clear()
        chosen = self._parameterNode.organs if self._parameterNode else []
        for label in (model.organs() if model else []):
            item = qt.QListWidgetItem(label["name"])
            item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
            item.setCheckState(qt.Qt.Checked if not chosen or label["name"] in chosen else qt.Qt.Unchecked)
            item.setData(qt.Qt.DecorationRole, qt.QColor(*label["color"]))
            self.ui.organsList.addItem(item)
        self.ui.organsList.blockSignals(False)
        self.updateGui()

    def onOrgansChanged(self, item=None) -> None:
        items = [self.ui.organsList.item(row) for row in range(self.ui.organsList.count)]
        checked = [i.text() for i in items if i.checkState() == qt.Qt.Checked]
        try:
            organs = organsToSegment(checked, [i.text() for i in items])
            self._organsProblem = ""
            self._parameterNode.organs = organs or []
        except ValueError as exc:  # none checked: Segment organs is disabled and says why
            self._organsProblem = str(exc)
        self.updateGui()

    def setAllOrgansChecked(self, checked: bool) -> None:
        """All / None: every organ at once, as one change of the organ choice."""
        self.ui.organsList.blockSignals(True)
        for row in range(self.ui.organsList.count):
            self.ui.organsList.item(row).setCheckState(qt.Qt.Checked if checked else qt.Qt.Unchecked)
        self.ui.organsList.blockSignals(False)
        self.onOrgansChanged()

    # After segmenting

    def onEditButton(self) -> None:
        segmentation = self._parameterNode.outputSegmentation
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(segmentation)
        editor.setSourceVolumeNode(self._parameterNode.inputVolume)

    def onAddTrainingCaseButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not add the training case."), waitCursor=True):
            volume, segmentation = self._parameterNode.inputVolume, self._parameterNode.outputSegmentation
            folder = self.logic.modelsHome / CASES_FOLDER
            case = addTrainingCase(volume, segmentation, folder)  # also marks the pair for HSAM Train
            self.addLog(_("Saved training case {case} (saving it again updates it). HSAM Train lists it among its "
                          "cases; or run `hsam train --cases {manifest}`.").format(
                              case=case, manifest=folder / "cases.json"))

    # Advanced

    def onModelsFolderChanged(self, path: str) -> None:
        qt.QSettings().setValue(MODELS_FOLDER_SETTING, path)
        self.logic.setModelsHome(path)
        self.logic.notifyModelsChanged("models folder changed")  # both modules list the new folder's models

    def onOpenModelsFolderButton(self) -> None:
        folder = self.logic.modelsHome
        folder.mkdir(parents=True, exist_ok=True)
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(folder)))

    def onClearModelsButton(self) -> None:
        downloaded = [m for m in self._models if m.downloaded]
        listed = "\n".join(str(m.path) for m in downloaded) or _("(no downloaded models)")
        if not slicer.util.confirmOkCancelDisplay(
                _("Delete these downloaded models and base weights, and any partial downloads?\n\n{paths}\n\n"
                  "Models you imported or trained are kept. Deleted models are downloaded again when "
                  "needed.").format(paths=listed)):
            return
        with slicer.util.tryWithErrorDisplay(_("Could not delete the models."), waitCursor=True):
            for path in self.logic.clearDownloadedModels(downloaded):  # both modules then list their models again
                self.addLog(_("Deleted {path}").format(path=path))

    def onPackageInfoButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not get package information."), waitCursor=True):
            self.ui.packageInfoText.plainText = packageInfo(self.logic.engine.python)
            self.ui.packageInfoText.visible = True

    def onDiagnosticsButton(self) -> None:
        """What a bug report needs, collected in the background (the engine imports torch: seconds)."""
        self.ui.diagnosticsButton.enabled = False
        version = f"{slicer.app.applicationVersion} r{getattr(slicer.app, 'revision', '?')} " \
                  f"{getattr(slicer.app, 'platform', '')}".strip()
        self._diagnostics = DiagnosticsCollector(self.logic.engine, version, self.ui.statusLog.plainText).start()
        self._showDiagnosticsWhenDone()

    def _showDiagnosticsWhenDone(self) -> None:
        if not self._diagnostics.done:
            qt.QTimer.singleShot(200, self._showDiagnosticsWhenDone)
            return
        qt.QApplication.clipboard().setText(self._diagnostics.text)
        self.ui.diagnosticsText.plainText = self._diagnostics.text
        self.ui.diagnosticsText.visible = True
        self.ui.diagnosticsButton.enabled = True
        self.addLog(_("Diagnostics copied to the clipboard: paste them into your bug report."))

    def onReinstallButton(self) -> None:
        if not slicer.util.confirmOkCancelDisplay(_("Force-reinstall HSAM's Python packages (not PyTorch)?")):
            return
        with slicer.util.tryWithErrorDisplay(_("Reinstalling failed."), waitCursor=True):
            reinstallRequirements(self.addLog)
        if slicer.util.confirmOkCancelDisplay(_("Restart Slicer now so that the reinstalled packages are used?")):
            slicer.util.restart()


class HSAMSegmentLogic(ScriptedLoadableModuleLogic, SegmentLogic):
    """Segment organs with the hsam engine, with or without the GUI:

        logic = HSAMSegmentLogic()
        segmentation = logic.process(volumeNode, None, model="hsam-abdomen-ct", device="auto")

    The work is done by HSAMSegmentLib.SegmentLogic; this class adds the module's parameter node."""

    def __init__(self) -> None:
        # once: ScriptedLoadableModuleLogic.__init__ calls super().__init__(), which is SegmentLogic.__init__ here
        super().__init__()
        self.tempRoot = slicer.app.temporaryPath

    def getParameterNode(self):
        return HSAMSegmentParameterNode(super().getParameterNode())
