"""Engine runs as state machines, driven by ``poll()`` from a timer (Slicer) or a loop (scripts).

``EngineJob`` runs a list of steps one after another: engine command lines (each in a worker process), work that
may take longer than a moment but needs no engine (``InBackground``: in a thread, e.g. writing files) and, between
them, short in-process functions (e.g. editing a file the previous process wrote):

    STARTING (``prepare()``: write the input files, list the steps) -> RUNNING (the steps)
      -> IMPORTING (``complete()``: bring the result into the scene) -> IDLE (done)
    RUNNING -> CANCELLING (the process asked to stop) -> IDLE (cancelled)
    any step that fails -> FAILED (``error`` holds the message)

A temporary work folder is removed whichever way the job ends; a job given its own ``workDir`` keeps it (a
training run resumes from it). MRML is only touched from the thread that calls ``start()`` and ``poll()``.

HSAM Segment's "Segment organs" run is ``HSAMSegmentLib.segmentation_job.SegmentationJob``."""
import enum
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Union

from .engine import Engine
from .errors import describeFailure
from .thread_worker import InBackground, ThreadWorker
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

# an engine command line, work in a thread, or a short in-process function between them
Step = Union[List[str], InBackground, Callable[[], None]]


class EngineJob:
    task = "engine"  # what the job does, for messages ("The {task} process failed ...")
    cancelGraceSeconds = 10.0  # how long a cancelled process may take to stop before it is killed

    def __init__(self, engine: Engine, progressCallback: Optional[Callable[[dict], None]] = None,
                 tempRoot: Optional[str] = None, keepTempFiles: bool = False, workDir: Optional[Path] = None):
        """``progressCallback`` receives the engine's JSON events and ``{"event": "state", "state": ...}`` on
        every state change. ``workDir``: a folder the job keeps; None: a temporary folder in ``tempRoot``,
        removed at the end unless ``keepTempFiles``."""
        self.engine = engine
        self.progressCallback = progressCallback
        self.tempRoot = tempRoot
        self.keepWorkDir = keepTempFiles or workDir is not None
        self.workDir: Optional[Path] = Path(workDir) if workDir is not None else None
        self.state = ProcessingState.STARTING
        self.error = ""
        self.cancelled = False
        self.result: Optional[dict] = None  # the last "result" event (e.g. where an import put the model)
        self.sceneClosed = False  # set when the scene closed during the run: nothing is brought into it
        self._steps: List[Step] = []
        self._worker: Optional[Union[WorkerProcess, ThreadWorker]] = None
        self._startTime = time.monotonic()

    @property
    def isActive(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == ProcessingState.IDLE and not self.cancelled

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._startTime

    def prepare(self) -> List[Step]:
        """Write the input files into ``workDir`` and return the steps; raise to refuse the start."""
        raise NotImplementedError

    def complete(self) -> None:
        """Use the result once every step succeeded; raise to fail the job."""
        raise NotImplementedError

    def start(self) -> None:
        """Prepare and launch the first process; returns at once. Raises (after cleaning up) when that fails."""
        try:
            if self.workDir is None:
                self.workDir = Path(tempfile.mkdtemp(prefix=f"HSAM-{self.task}-", dir=self.tempRoot))
            self.workDir.mkdir(parents=True, exist_ok=True)
            self._steps = list(self.prepare())
            if not self._startNextProcess():
                raise RuntimeError(f"the {self.task} job has no engine command to run")
        except Exception as exc:
            self._fail(str(exc))
            raise
        self._setState(ProcessingState.RUNNING)

    def _startNextProcess(self) -> bool:
        """Run in-process steps up to the next command line and launch it; False when no command is left."""
        while self._steps and callable(self._steps[0]):
            self._steps.pop(0)()
        if not self._steps:
            return False
        step = self._steps.pop(0)
        if isinstance(step, InBackground):
            self._report({"event": "log", "message": step.description})
            self._worker = ThreadWorker(step)
        else:
            self._report({"event": "log", "message": "Running: " + " ".join(step)})
            self._worker = WorkerProcess(step, env=self.engine.environment(), cwd=str(self.workDir),
                                         cancelGraceSeconds=self.cancelGraceSeconds,
                                         logFile=self.engine.newLogFile(self.task))
        self._worker.start()
        return True

    def poll(self) -> bool:
        """Forward new events and move on when a process has ended; True while the job is active."""
        worker = self._worker
        if worker is None:
            return self.isActive
        code = worker.poll()
        for event in worker.events():
            if event.get("event") == "result":
                self.result = event
            if event.get("event") != "error":  # the job reports failures itself, with a hint, once the process ends
                self._report(event)
        if code is None:
            return True
        self._worker = None
        if self.state == ProcessingState.CANCELLING:
            self._finish(cancelled=True)
        elif code != 0:
            self._fail(describeFailure(code, worker.errorText(), self.task))
        else:
            self._continue()
        return self.isActive

    def _continue(self) -> None:
        try:
            if self._startNextProcess():
                return
            self._setState(ProcessingState.IMPORTING)
            self.complete()
        except Exception as exc:
            self._fail(str(exc))
            return
        self._finish(cancelled=False)

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

    def _finish(self, cancelled: bool) -> None:
        self.cancelled = cancelled
        self._removeWorkDir()
        if cancelled:
            self._report({"event": "log", "message": f"{self.task.capitalize()} cancelled."})
        self._setState(ProcessingState.IDLE)

    def _fail(self, message: str) -> None:
        self.error = message
        self._removeWorkDir()
        self._report({"event": "error", "message": message})
        self._setState(ProcessingState.FAILED)

    def _removeWorkDir(self) -> None:
        if self.workDir is not None and not self.keepWorkDir:
            shutil.rmtree(self.workDir, ignore_errors=True)

    def _setState(self, state: ProcessingState) -> None:
        self.state = state
        self._report({"event": "state", "state": state.value})

    def _report(self, event: dict) -> None:
        if self.progressCallback is not None:
            self.progressCallback(event)
