"""A request to stop, the same for ``hsam segment`` and ``hsam train``, on every OS.

A run stops when it receives SIGINT or SIGTERM, or when the file named by the environment variable
``HSAM_STOP_FILE`` exists. Windows cannot send SIGTERM to a child process, so the Slicer modules ask for a stop
by creating that file; every long loop polls it between steps. The engine never creates or deletes it: the caller
names a fresh path for each run. A second Ctrl-C stops at once (training then saves nothing).
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

STOP_FILE_VARIABLE = "HSAM_STOP_FILE"
EXIT_STOPPED = 3  # the exit code of a run stopped by request (docs/command-line.md)


class StopRequested(Exception):
    """The user asked to stop (SIGINT, SIGTERM or the stop file)."""


class StopRequest:
    """Set by a signal (while installed), by the stop file or by ``set()``; loops call ``check()`` or read
    ``requested`` between steps. Use as a context manager to install the signal handlers for a block."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stop_file: Optional[str] = None) -> None:
        self._event = threading.Event()
        name = stop_file if stop_file is not None else os.environ.get(STOP_FILE_VARIABLE, "")
        self.stop_file = Path(name) if name else None
        self._previous: Dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        if not self._event.is_set() and self.stop_file is not None and self.stop_file.exists():
            self._event.set()
        return self._event.is_set()

    def is_set(self) -> bool:
        return self.requested

    def set(self, *_: Any) -> None:
        self._event.set()

    def check(self) -> None:
        if self.requested:
            raise StopRequested("stopped by request")

    def install_signal_handlers(self) -> None:
        """Route SIGINT/SIGTERM here until ``restore_signal_handlers`` (handlers can only be set in the main
        thread; elsewhere only the stop file and ``set()`` work)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            self._previous.setdefault(sig, signal.signal(sig, self._handle))

    def restore_signal_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> StopRequest:
        self.install_signal_handlers()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore_signal_handlers()

    def _handle(self, signum: int, frame: Any) -> None:
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without saving
        self._event.set()


@contextlib.contextmanager
def stop_on_terminate() -> Iterator[None]:
    """Within this block SIGTERM stops the process like Ctrl-C does (exit 3, one line) until a command installs
    its own handlers, instead of killing it with no message."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_stop(signum: int, frame: Any) -> None:
    raise StopRequested("stopped by request (SIGTERM)")
