"""One "Segment organs" run as a state machine, driven by ``poll()`` from a timer (Slicer) or a loop (scripts):

    STARTING (export the volume) -> RUNNING (engine processes: optional model download, then segment)
      -> IMPORTING (read the result into the segmentation node) -> IDLE (done)
    RUNNING -> CANCELLING (processes asked to stop) -> IDLE (cancelled; the scene is unchanged)
    any step that fails -> FAILED (``error`` holds the message)

The temporary folder is removed whichever way the job ends. MRML is only touched from the thread that calls
``start()`` and ``poll()``."""
import enum
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from .engine import Engine
from .errors import describeFailure
from .result_import import importSegmentation
from .volume_export import exportVolume
from .worker import WorkerProcess


class ProcessingState(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    IMPORTING = "importing"
    CANCELLING = "cancelling"
    FAILED = "failed"


ACTIVE_STATES = (ProcessingState.STARTING, ProcessingState.RUNNING, ProcessingState.IMPORTING,
                 ProcessingState.CANCELLING)
INPUT_FILE = "input.nrrd"
RESULT_FILE = "result.seg.nrrd"


class SegmentationJob:
    def __init__(self, engine: Engine, inputVolume, outputSegmentation=None, model: Optional[str] = None,
                 device: str = "auto", organs: Optional[Sequence[str]] = None, postprocess: bool = True,
                 show3D: bool = True, downloadModel: Optional[str] = None,
                 progressCallback: Optional[Callable[[dict], None]] = None, tempRoot: Optional[str] = None,
                 keepTempFiles: bool = False):
        """``outputSegmentation`` None: a new segmentation node is added to the scene when the result arrives.
        ``downloadModel``: a registry id to download first (the caller has the user's consent).
        ``progressCallback`` receives the engine's JSON events (``progress``, ``log``, ``result``, ``error``)
        and ``{"event": "state", "state": ...}`` on every state change."""
        self.engine = engine
        self.inputVolume = inputVolume
        self.outputSegmentation = outputSegmentation
        self.model = model
        self.device = device
        self.organs = list(organs) if organs else None
        self.postprocess = postprocess
        self.show3D = show3D
        self.downloadModel = downloadModel
        self.progressCallback = progressCallback
        self.tempRoot = tempRoot
        self.keepTempFiles = keepTempFiles
        self.state = ProcessingState.STARTING
        self.error = ""
        self.cancelled = False
        self.tempDir: Optional[Path] = None
        self._steps: List[List[str]] = []
        self._worker: Optional[WorkerProcess] = None
        self._startTime = time.monotonic()

    @property
    def isActive(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == ProcessingState.IDLE and not self.cancelled

    def start(self) -> None:
        """Export the volume and launch the first engine process; returns at once. Raises (after cleaning up)
        when that fails."""
        try:
            self.tempDir = Path(tempfile.mkdtemp(prefix="HSAMSegment-", dir=self.tempRoot))
            inputPath = exportVolume(self.inputVolume, self.tempDir / INPUT_FILE)
            if self.downloadModel:
                self._steps.append(self.engine.downloadCommand(self.downloadModel))
            self._steps.append(self.engine.segmentCommand(inputPath, self.tempDir / RESULT_FILE, self.model,
                                                          self.device, self.organs, self.postprocess))
            self._startNextStep()
        except Exception as exc:
            self._fail(str(exc))
            raise
        self._setState(ProcessingState.RUNNING)

    def _startNextStep(self) -> None:
        args = self._steps.pop(0)
        self._report({"event": "log", "message": "Running: " + " ".join(args)})
        self._worker = WorkerProcess(args, env=self.engine.environment(), cwd=str(self.tempDir))
        self._worker.start()

    def poll(self) -> bool:
        """Forward new events and move on when a process has ended; True while the job is active."""
        worker = self._worker
        if worker is None:
            return self.isActive
        code = worker.poll()
        for event in worker.events():
            if event.get("event") != "error":  # the job reports failures itself, with a hint, once the process ends
                self._report(event)
        if code is None:
            return True
        self._worker = None
        if self.state == ProcessingState.CANCELLING:
            self._finish(cancelled=True)
        elif code != 0:
            self._fail(describeFailure(code, worker.errorText()))
        elif self._steps:
            self._startNextStep()
        else:
            self._importResult()
        return self.isActive

    def cancel(self) -> None:
        """Stop the engine process; the job ends (state IDLE, ``cancelled``) once it has exited."""
        if self.state == ProcessingState.STARTING and self._worker is None:
            self._finish(cancelled=True)
        elif self.state == ProcessingState.RUNNING:
            self._setState(ProcessingState.CANCELLING)
            self._worker.cancel()

    def wait(self, interval: float = 0.1) -> None:
        while self.poll():
            time.sleep(interval)

    def _importResult(self) -> None:
        self._setState(ProcessingState.IMPORTING)
        try:
            if self.outputSegmentation is None:
                self.outputSegmentation = self.inputVolume.GetScene().AddNewNodeByClass(
                    "vtkMRMLSegmentationNode", self.inputVolume.GetName() + " segmentation")
            importSegmentation(self.tempDir / RESULT_FILE, self.outputSegmentation, self.inputVolume, self.show3D)
        except Exception as exc:
            self._fail(f"Could not import the result: {exc}")
            return
        seconds = time.monotonic() - self._startTime
        self._report({"event": "log", "message": f"Segmentation finished in {seconds:.1f} s."})
        self._finish(cancelled=False)

    def _finish(self, cancelled: bool) -> None:
        self.cancelled = cancelled
        self._removeTempDir()
        if cancelled:
            self._report({"event": "log", "message": "Segmentation cancelled."})
        self._setState(ProcessingState.IDLE)

    def _fail(self, message: str) -> None:
        self.error = message
        self._removeTempDir()
        self._report({"event": "error", "message": message})
        self._setState(ProcessingState.FAILED)

    def _removeTempDir(self) -> None:
        if self.tempDir is not None and not self.keepTempFiles:
            shutil.rmtree(self.tempDir, ignore_errors=True)

    def _setState(self, state: ProcessingState) -> None:
        self.state = state
        self._report({"event": "state", "state": state.value})

    def _report(self, event: dict) -> None:
        if self.progressCallback is not None:
            self.progressCallback(event)
