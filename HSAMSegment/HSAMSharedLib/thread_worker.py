"""A step of an engine job that runs in a Python thread instead of a child process: file writing between the
processes (e.g. the training cases), so that it never blocks Slicer's GUI thread.

It has WorkerProcess's interface (``start``, ``poll``, ``events``, ``cancel``, ``kill``, ``errorText``), so a job
drives both the same way. Only work that releases the GIL belongs here (numpy, zlib, file I/O), and never MRML or
VTK objects of the scene: the function receives plain data prepared on the GUI thread."""
import queue
import threading
import traceback
from typing import Callable, List, Optional

from .worker import drainQueue

CANCELLED_CODE = 3  # the engine's "stopped by request" exit code


class StopRequested(Exception):
    """Raised by ``checkCancel`` inside the function when Cancel was pressed."""


class InBackground:
    """A job step: ``function(worker)`` runs in a thread; it may call ``worker.report(event)`` and
    ``worker.checkCancel()``."""

    def __init__(self, function: Callable[["ThreadWorker"], None], description: str) -> None:
        self.function = function
        self.description = description


class ThreadWorker:
    def __init__(self, step: InBackground) -> None:
        self.step = step
        self.cancelRequested = False
        self._events: "queue.Queue[dict]" = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._code: Optional[int] = None
        self._error = ""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="HSAM " + self.step.description, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.step.function(self)
            code = 0
        except StopRequested:
            code = CANCELLED_CODE
        except Exception as exc:
            self._error = f"{self.step.description} failed: {exc}"
            self.report({"event": "log", "message": traceback.format_exc()})
            code = 1
        self._code = code

    def report(self, event: dict) -> None:
        self._events.put(event)

    def checkCancel(self) -> None:
        if self.cancelRequested:
            raise StopRequested()

    def events(self) -> List[dict]:
        return drainQueue(self._events)

    def poll(self) -> Optional[int]:
        return self._code

    @property
    def returncode(self) -> Optional[int]:
        return self._code

    def isRunning(self) -> bool:
        return self._thread is not None and self._code is None

    def cancel(self) -> None:
        """The function stops at its next ``checkCancel()``."""
        self.cancelRequested = True

    def kill(self) -> None:
        self.cancel()  # a thread cannot be killed; the function checks between its pieces of work

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        if self._thread is not None:
            self._thread.join(timeout)
        return self._code

    def errorText(self) -> str:
        return self._error
