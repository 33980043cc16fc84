"""What the widgets of HSAM Segment and HSAM Train do alike: parameter node wiring, polling the engine job and the
model listing in the background, cancelling, installing the engine's packages, a closing scene, quitting Slicer.

Unlike the rest of HSAMSharedLib this needs Slicer's GUI, so the package's __init__ does not import it: the
widgets import it by its own name. It never uses a widget of a .ui file; the modules do that in their hooks."""
import time

import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from .dependencies import describeMissing
from .engine import engineAvailable
from .job import ProcessingState
from .models import modelsFromEvents
from .notifications import MODELS_CHANGED

POLL_INTERVAL_MS = 200
MODELS_FOLDER_SETTING = "HSAMSegment/modelsFolder"  # per user, shared by both modules (HSAM Segment's Advanced)


def pollTimer(callback) -> "qt.QTimer":
    timer = qt.QTimer()
    timer.setInterval(POLL_INTERVAL_MS)
    timer.timeout.connect(callback)
    return timer


class QuitGuard(qt.QObject):
    """Sees the main window's close event before Slicer does: a module whose job runs asks first (the user may
    keep Slicer open) and stops the job with a visible wait, never silently."""

    def __init__(self, widget) -> None:
        qt.QObject.__init__(self)
        self.widget = widget

    def eventFilter(self, watched, event) -> bool:
        if event.type() == qt.QEvent.Close and not self.widget.allowQuit():
            event.ignore()  # an accepted close event closes the window even when the filter consumes it
            return True
        return False


class EngineModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """A module widget whose logic (an EngineLogic) runs one engine job at a time.

    The module provides showState(state), addLog(text), _pollJob() (polled while a job runs, started with
    self._jobTimer.start()) and the model listing's hooks: showModelInfo(text), onModelsNotListed(errorText)
    and onModelsListed() (self._models is then the new list). The modules never call each other's widgets: they
    share the logic's MODELS_CHANGED signal and the scene's nodes."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._models = []
        self._modelListing = None
        self._modelsListError = ""
        self._quitGuard = None
        self._jobTimer = pollTimer(self._pollJob)
        self._modelsTimer = pollTimer(self._pollModelListing)

    def setupUi(self, uiFile: str, logic) -> None:
        """Load the module's .ui file into self.ui, take the logic, and follow the scene, the models and quitting."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(uiFile))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = logic
        self.logic.cancelOnSceneClose(slicer.mrmlScene)  # the logic cancels; the poll timer sees the job end
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        MODELS_CHANGED.connect(self.onModelsChanged)
        mainWindow = slicer.util.mainWindow()
        if mainWindow is not None:
            self._quitGuard = QuitGuard(self)
            mainWindow.installEventFilter(self._quitGuard)

    def cleanup(self) -> None:
        """The module is unloaded (Slicer quits, or the module reloads): stop a job, showing that we wait."""
        MODELS_CHANGED.disconnect(self.onModelsChanged)
        mainWindow = slicer.util.mainWindow()
        if self._quitGuard is not None and mainWindow is not None:
            mainWindow.removeEventFilter(self._quitGuard)
        self._quitGuard = None
        self.removeObservers()
        self._modelsTimer.stop()
        if self.logic is not None:
            self.logic.stopWatchingScene()
            if self.logic.isRunning:
                self.logic.cancel()
                self.waitForJobEnd()
        self._jobTimer.stop()
        if self._modelListing is not None:
            self._modelListing.kill()

    # Quitting Slicer while a job runs

    def quitQuestion(self) -> str:
        """What to ask before a running job is stopped because Slicer quits ("" stops it without asking)."""
        return ""

    def allowQuit(self) -> bool:
        if self.logic is None or not self.logic.isRunning:
            return True
        question = self.quitQuestion()
        if question and not slicer.util.confirmOkCancelDisplay(question, windowTitle=_("Quit Slicer?")):
            return False
        self.logic.cancel()
        self.waitForJobEnd()
        return True

    def waitForJobEnd(self) -> None:
        """Wait for a cancelled job to end, with a progress dialog when there is a main window."""
        job = self.logic.job
        dialog = None
        if slicer.util.mainWindow() is not None:
            dialog = slicer.util.createProgressDialog(
                maximum=0, windowTitle=self.moduleName,
                labelText=_("Stopping the {task} (a training run saves a checkpoint first)...").format(
                    task=job.task))
            dialog.setCancelButton(None)
        try:
            while job.poll():
                if dialog is not None:
                    slicer.app.processEvents(qt.QEventLoop.ExcludeUserInputEvents)
                time.sleep(0.05)
        finally:
            if dialog is not None:
                dialog.close()
        self.updateGui()

    # Scene

    def onSceneStartClose(self, caller, event) -> None:
        """The logic has cancelled a running job already (without waiting); its end is polled as usual."""
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # Packages

    def ensureRequirements(self) -> bool:
        """True when the engine can run; installs missing packages after asking (both modules then list their
        models again)."""
        if not engineAvailable():
            raise RuntimeError(_("The hsam engine was not found next to the module: reinstall the HSAM extension."))
        missing = self.logic.missingPackages()
        if not missing:
            return True
        names = "\n".join(describeMissing(requirement) for requirement in missing)
        if not slicer.util.confirmOkCancelDisplay(
                _("HSAM needs these Python packages, which are not installed yet:\n\n{names}\n\n"
                  "Install them now? PyTorch alone is a download of up to a few GB and can take several "
                  "minutes.").format(names=names)):
            return False
        with slicer.util.WaitCursor():
            self.logic.installMissingPackages(self.addLog)
        return True

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
        self.updateGui()

    # Processing state -> GUI

    def updateGui(self, caller=None, event=None) -> None:
        job = self.logic.job if self.logic else None
        self.showState(job.state if job else ProcessingState.IDLE)

    def showJobEvent(self, event) -> None:
        """The events every job sends: log lines, errors and state changes."""
        kind = event.get("event")
        if kind in ("log", "error"):
            self.addLog(event.get("message", ""))
        elif kind == "state":
            self.showState(ProcessingState(event["state"]))
            # show the state at once, also during synchronous work (import); no user input meanwhile, so that, for
            # example, closing the scene cannot happen in the middle of an import
            slicer.app.processEvents(qt.QEventLoop.ExcludeUserInputEvents)

    def cancelRunningJob(self) -> bool:
        """The start button is "Cancel" while a job runs: cancel it (never start a second one). False when no job
        runs."""
        if not self.logic.isRunning:
            return False
        self.logic.cancel()
        self.updateGui()
        return True

    def endedJob(self):
        """For _pollJob: the job once it has ended (polling then stops); None while it runs or when there is none."""
        job = self.logic.job
        if job is not None and job.poll():
            return None
        self._jobTimer.stop()
        return job

    # Models

    def onModelsChanged(self, reason: str = "") -> None:
        """MODELS_CHANGED (from either module's logic): list again, once the emitter has finished."""
        qt.QTimer.singleShot(0, self.refreshModels)

    def refreshModels(self) -> None:
        """Read the model list again, in a background process; onModelsListed or onModelsNotListed follows."""
        if self._modelListing is not None:
            self._modelListing.kill()
        self.logic.setModelsHome(slicer.util.settingsValue(MODELS_FOLDER_SETTING, ""))
        self.showModelInfo(_("Listing models..."))
        self._modelListing = self.logic.startModelListing()
        self._modelsTimer.start()

    def _pollModelListing(self) -> None:
        listing = self._modelListing
        if listing is None or listing.poll() is None:
            return
        self._modelsTimer.stop()
        self._modelListing = None
        events = listing.events()
        if listing.returncode != 0:
            self._modelsListError = listing.errorText() or _("the engine could not start")
            self.onModelsNotListed(self._modelsListError)
            return
        self._modelsListError = ""
        self._models = modelsFromEvents(events)
        self.onModelsListed()
