"""What the widgets of HSAM Segment and HSAM Train do alike: parameter node wiring, polling the engine job and the
model listing in the background, cancelling.

Unlike the rest of HSAMSegmentLib this needs Slicer's GUI, so the package's __init__ does not import it: the
widgets import it by its own name. It never uses a widget of a .ui file; the modules do that in their hooks."""
import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from .job import ProcessingState
from .models import modelsFromEvents

POLL_INTERVAL_MS = 200


def pollTimer(callback) -> "qt.QTimer":
    timer = qt.QTimer()
    timer.setInterval(POLL_INTERVAL_MS)
    timer.timeout.connect(callback)
    return timer


class EngineModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """A module widget whose logic (an EngineLogic) runs one engine job at a time.

    The module provides self.logic (in setup), showState(state), addLog(text), _pollJob() (polled while a job
    runs, started with self._jobTimer.start()) and the model listing's hooks: showModelInfo(text),
    onModelsNotListed(errorText) and onModelsListed() (self._models is then the new list)."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._models = []
        self._modelListing = None
        self._jobTimer = pollTimer(self._pollJob)
        self._modelsTimer = pollTimer(self._pollModelListing)

    def setupUi(self, uiFile: str) -> None:
        """Load the module's .ui file into self.ui and observe the scene closing."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(uiFile))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

    def cleanup(self) -> None:
        """Slicer closes (or the module reloads): stop a job cleanly (a training run can then be resumed)."""
        self.removeObservers()
        self._modelsTimer.stop()
        self.stopJobAndWait()
        if self._modelListing is not None:
            self._modelListing.kill()

    def stopJobAndWait(self) -> None:
        self._jobTimer.stop()
        if self.logic is not None and self.logic.isRunning:
            self.logic.cancel()
            self.logic.job.wait()  # at most the cancel grace period (a training run saves a checkpoint first)

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
            slicer.app.processEvents()  # show the state at once, also during synchronous work (import, export)

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

    def refreshModels(self) -> None:
        """Read the model list again, in a background process; onModelsListed or onModelsNotListed follows."""
        if self._modelListing is not None:
            self._modelListing.kill()
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
            self.onModelsNotListed(listing.errorText())
            return
        self._models = modelsFromEvents(events)
        self.onModelsListed()
