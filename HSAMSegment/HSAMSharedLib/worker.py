"""One engine command in a child process: JSON-lines events from stdout, the error text from stderr.

GUI-free and non-blocking: the caller polls ``events()``/``poll()`` (a QTimer in Slicer, a loop in scripts).

Cancel works the same on every OS: it creates the stop file whose path the child received in ``HSAM_STOP_FILE``
(the engine polls it between steps, saves a training checkpoint, removes partial output and exits with 3); on
POSIX it also sends SIGTERM to the process group. Windows has no SIGTERM for a child process, which is why the
file is the request every OS shares. Only when the process has not ended after a grace period (training needs
time to save) is the whole tree killed, so launchers such as PythonSlicer never leave an orphaned Python process
behind.

Every child process the modules start (engine, ``nvidia-smi``, ``pip show``, ``taskkill``) takes its platform
options from ``childProcessOptions``: on Windows a console program started from Slicer (a GUI program) would
otherwise open a console window, and closing that window kills the run.
"""
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ENGINE_ERROR_PREFIX = "hsam: error:"
STDERR_LINES_KEPT = 200
STOP_FILE_VARIABLE = "HSAM_STOP_FILE"  # the engine's name for it (hsam/stop.py)
STOP_FILE_NAME = "stop-request"
EXIT_STOPPED = 3  # the engine's exit code after a stop request

# Windows API values (winbase.h / winuser.h), also used to build the options on other systems for tests.
STARTF_USESHOWWINDOW = 0x00000001
SW_HIDE = 0
CREATE_NEW_PROCESS_GROUP = 0x00000200


def childProcessOptions(platform: str = sys.platform, ownProcessGroup: bool = False) -> dict:
    """Keyword arguments for ``subprocess.Popen``/``run`` that start a child process hidden, as
    ``slicer.util.launchConsoleProcess`` does: on Windows a console that is created hidden (STARTUPINFO with
    SW_HIDE). Not CREATE_NO_WINDOW: that gives the child no console at all, so each console program it starts in
    turn (PythonSlicer's real Python, DataLoader workers, nvidia-smi) would open a visible window of its own;
    a hidden console is inherited by them.

    ``ownProcessGroup``: the child and everything it starts can be stopped together (a new process group on
    Windows, a new session on POSIX)."""
    if platform == "win32":
        info = _startupInfo()
        info.dwFlags |= STARTF_USESHOWWINDOW
        info.wShowWindow = SW_HIDE
        options = {"startupinfo": info}
        if ownProcessGroup:
            options["creationflags"] = CREATE_NEW_PROCESS_GROUP
        return options
    return {"start_new_session": True} if ownProcessGroup else {}


def utf8Environment(env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """``env`` (default: this process's environment) with a Python child's standard streams in UTF-8: the
    caller decodes them as UTF-8, while Python on Windows would otherwise write the console's code page
    (cp1252...)."""
    env = dict(os.environ if env is None else env)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _startupInfo():
    # subprocess.STARTUPINFO exists only on Windows; elsewhere (checking the Windows options) a record with its
    # two fields that matter here.
    startupInfoClass = getattr(subprocess, "STARTUPINFO", None)
    return startupInfoClass() if startupInfoClass else types.SimpleNamespace(dwFlags=0, wShowWindow=0)



def drainQueue(events: "queue.Queue") -> list:
    """Everything in ``events`` now, without waiting: what a timer on the GUI thread takes from a reader thread."""
    received = []
    while True:
        try:
            received.append(events.get_nowait())
        except queue.Empty:
            return received

class WorkerProcess:
    # SIGTERM reaches the engine even between two polls of the stop file; False exercises the Windows path.
    signalOnCancel = sys.platform != "win32"

    def __init__(self, args: Sequence[str], env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
                 cancelGraceSeconds: float = 10.0, logFile: Optional[Path] = None):
        """``env``: the child's environment (default: this process's), to which the worker adds UTF-8 streams
        and ``HSAM_STOP_FILE``. ``cancelGraceSeconds``: how long a cancelled process may take to stop.
        ``logFile``: where the command line, everything the engine writes to stderr, its log and error events and
        its exit code are also written, for a bug report (Diagnostics shows the newest)."""
        self.args = list(args)
        self.logFile = Path(logFile) if logFile else None
        self._log = None
        self._logLock = threading.Lock()  # both reader threads write to it
        self.env = env
        self.cwd = cwd
        self.cancelGraceSeconds = cancelGraceSeconds
        self.cancelRequested = False
        self.stopFile: Optional[Path] = None
        self._stopFolder: Optional[str] = None
        self._process = None
        self._events = queue.Queue()
        self._stderr: List[str] = []
        self._readers: List[threading.Thread] = []
        self._killDeadline = None

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("this worker was already started")
        # A fresh folder per process: the stop file must not exist when the engine starts, and is never shared.
        self._stopFolder = tempfile.mkdtemp(prefix="hsam-stop-")
        self.stopFile = Path(self._stopFolder) / STOP_FILE_NAME
        env = utf8Environment(self.env)
        env[STOP_FILE_VARIABLE] = str(self.stopFile)
        if self.logFile is not None:
            self._log = open(self.logFile, "a", encoding="utf-8", errors="replace")
            self._writeLog("$ " + " ".join(self.args))
        try:
            self._process = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                cwd=self.cwd, text=True, encoding="utf-8", errors="replace", bufsize=1,
                **childProcessOptions(ownProcessGroup=True))
        except BaseException as exc:
            self._writeLog(f"could not start: {exc}")
            self._closeLog(-1)
            self._removeStopFolder()
            raise
        self._readers = [threading.Thread(target=self._readStdout, daemon=True),
                         threading.Thread(target=self._readStderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process else None

    def _readStdout(self) -> None:
        for line in self._process.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            # Anything that is not an engine event (a library printing to stdout) is still worth showing.
            if not (isinstance(event, dict) and "event" in event):
                event = {"event": "log", "message": line}
            if event["event"] in ("log", "error"):
                self._writeLog(f"{event['event']}: {event.get('message', '')}")
            self._events.put(event)

    def _readStderr(self) -> None:
        for line in self._process.stderr:
            self._stderr.append(line.rstrip())
            del self._stderr[:-STDERR_LINES_KEPT]
            self._writeLog(line.rstrip())

    def _writeLog(self, line: str) -> None:
        with self._logLock:
            if self._log is not None:
                self._log.write(time.strftime("%H:%M:%S ") + line + "\n")
                self._log.flush()

    def _closeLog(self, code: int) -> None:
        self._writeLog(f"exit code {code}")
        with self._logLock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def events(self) -> List[dict]:
        """Events received since the last call (never blocks)."""
        return drainQueue(self._events)

    def poll(self) -> Optional[int]:
        """The exit code once the process has ended and its output was read, else None. Escalates a cancel to a
        kill once the grace period is over."""
        if self._process is None:
            return None
        code = self._process.poll()
        if code is None:
            if self._killDeadline is not None and time.monotonic() > self._killDeadline:
                self.kill()
            return None
        for reader in self._readers:
            reader.join(timeout=5)
        self._removeStopFolder()
        if self._log is not None:
            self._closeLog(code)
        return code

    @property
    def returncode(self) -> Optional[int]:
        return self.poll()

    def isRunning(self) -> bool:
        return self._process is not None and self.poll() is None

    def cancel(self) -> None:
        """Ask the process to stop (non-blocking): the stop file, and SIGTERM to its group on POSIX. ``poll()``
        kills the whole tree once ``cancelGraceSeconds`` have passed."""
        self.cancelRequested = True
        if not self.isRunning() or self._killDeadline is not None:
            return
        self._killDeadline = time.monotonic() + self.cancelGraceSeconds
        try:
            self.stopFile.write_text("stop requested\n", encoding="utf-8")
        except OSError:
            if sys.platform == "win32":  # no other way to ask; the engine writes through temporary files
                self.kill()
                return
        if self.signalOnCancel:
            _signalGroup(self._process.pid, signal.SIGTERM)

    def kill(self) -> None:
        """End the process and everything it started, now."""
        if self._process is None or self._process.poll() is not None:
            return
        if sys.platform == "win32":
            # /T: the launcher's children too (PythonSlicer.exe starts the real Python as a child)
            try:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._process.pid)], capture_output=True,
                               timeout=30, **childProcessOptions())
            except (OSError, subprocess.SubprocessError):
                pass
            if self._process.poll() is None:
                self._process.kill()  # taskkill failed: at least the process itself
        else:
            _signalGroup(self._process.pid, signal.SIGKILL)

    def wait(self, timeout: Optional[float] = None, interval: float = 0.1) -> Optional[int]:
        """Block until the process ends (or ``timeout`` seconds pass); returns the exit code or None."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            code = self.poll()
            if code is not None or (deadline is not None and time.monotonic() > deadline):
                return code
            time.sleep(interval)

    def stderrText(self) -> str:
        return "\n".join(self._stderr)

    def errorText(self) -> str:
        """What went wrong, in the engine's words: its ``hsam: error:`` line, else the last line of stderr
        (the last line of a traceback names the exception)."""
        lines = [line for line in self._stderr if line.strip()]
        for line in reversed(lines):
            if line.startswith(ENGINE_ERROR_PREFIX):
                return line[len(ENGINE_ERROR_PREFIX):].strip()
        return lines[-1].strip() if lines else ""

    def _removeStopFolder(self) -> None:
        if self._stopFolder is not None:
            shutil.rmtree(self._stopFolder, ignore_errors=True)
            self._stopFolder = None


def _signalGroup(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        pass  # already gone
