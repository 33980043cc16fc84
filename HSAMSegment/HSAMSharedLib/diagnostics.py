"""What a bug report needs, as text a user pastes into an issue: the Slicer version, the Python and OS of Slicer's
process, and what the engine says about itself with ``hsam info --json`` (engine version, its Python, PyTorch, CUDA,
GPUs, models folder, installed models, last engine log), plus the last lines of the module's own log.

GUI-free. ``collectDiagnostics`` blocks for seconds (the engine imports torch), so the module runs it through
``DiagnosticsCollector`` in a thread that touches no Qt or MRML object, and polls ``done``."""
import json
import platform
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

from .engine import Engine
from .worker import childProcessOptions, utf8Environment

INFO_TIMEOUT_SECONDS = 180  # a first import of torch from a cold disk can take a minute
LOG_LINES_KEPT = 40
# The engine's keys in report order, with their labels; keys the engine adds later are listed after them.
ENGINE_FIELDS = (("engine_version", "Engine (hsam)"), ("python", "Engine Python"), ("platform", "Engine OS"),
                 ("torch", "PyTorch"), ("cuda", "CUDA"), ("gpus", "GPUs"), ("models_folder", "Models folder"),
                 ("models", "Models"))
LOG_FIELD = "last_log"


def engineInfo(engine: Engine, timeout: float = INFO_TIMEOUT_SECONDS) -> Dict[str, Any]:
    """The engine's report about itself; ``{"error": why}`` when it cannot give one (the report is made anyway)."""
    reply = _runEngine(engine.command("info", "--json"), engine, timeout)
    if "error" in reply:
        return {"error": reply["error"]}
    if reply["exitCode"] != 0:
        return {"error": f"the engine exited with code {reply['exitCode']}: {_lastLines(reply['stderr'], 15)}"}
    info = _jsonObject(reply["stdout"])
    return info if info is not None else {"error": f"the engine's reply is not a JSON object: "
                                                   f"{_lastLines(reply['stdout'], 5)}"}


def _jsonObject(text: str) -> Optional[Dict[str, Any]]:
    """The JSON object of the reply: all of it (indented or not), else its last line (after library chatter)."""
    lines = text.strip().splitlines()
    for candidate in (text, lines[-1] if lines else ""):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _runEngine(args: List[str], engine: Engine, timeout: float) -> Dict[str, Any]:
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, encoding="utf-8",
                              errors="replace", env=utf8Environment(engine.environment()), timeout=timeout,
                              **childProcessOptions())
    except subprocess.TimeoutExpired:
        return {"error": f"the engine gave no answer within {timeout:.0f} s"}
    except OSError as exc:
        return {"error": f"the engine could not be started ({args[0]}): {exc}"}
    return {"exitCode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def _lastLines(text: str, count: int) -> str:
    return "\n".join((text or "").strip().splitlines()[-count:]) or "(no output)"


def _formatValue(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, list):
        return ", ".join(_formatValue(v) for v in value)
    if isinstance(value, dict):
        if "id" in value:  # a model: "hsam-abdomen-ct 3 (installed)"
            state = f" ({value['state']})" if value.get("state") else ""
            return f"{value['id']} {value.get('version') or ''}".strip() + state
        if "name" in value:  # a GPU: "NVIDIA RTX A4000 (16.0 GB)" or whatever else it carries
            rest = ", ".join(f"{k} {v}" for k, v in value.items() if k != "name")
            return f"{value['name']} ({rest})" if rest else str(value["name"])
        return json.dumps(value, sort_keys=True)
    return str(value)


def _formatLog(log: Any) -> str:
    """The engine names its last log file (HSAM_HOME/logs): its path and last lines, read here."""
    if not log:
        return "(none)"
    path = Path(str(log))
    if isinstance(log, str) and "\n" not in log and path.is_file():
        return f"{path}\n{_lastLines(_tail(path), LOG_LINES_KEPT)}"
    return _lastLines(str(log), LOG_LINES_KEPT)


def _tail(path: Path, size: int = 64 * 1024) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(max(0, path.stat().st_size - size))
            return file.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot be read: {exc})"


def reportText(slicerVersion: str, info: Dict[str, Any], moduleLog: str = "") -> str:
    """The report, in Markdown that reads the same pasted into an issue or an e-mail."""
    lines = ["### HSAM diagnostics", "",
             f"- Slicer: {slicerVersion or 'unknown'}",
             f"- Slicer's Python: {sys.version.split()[0]}",
             f"- OS: {platform.platform()} ({platform.machine()})"]
    if "error" in info:
        lines.append(f"- Engine: no report ({info['error']})")
    known = {key for key, _ in ENGINE_FIELDS} | {LOG_FIELD, "error"}
    for key, label in ENGINE_FIELDS:
        if key in info:
            lines.append(f"- {label}: {_formatValue(info[key])}")
    lines += [f"- {key}: {_formatValue(value)}" for key, value in sorted(info.items()) if key not in known]
    if LOG_FIELD in info:
        lines += ["", "Last engine log:", "```", _formatLog(info[LOG_FIELD]), "```"]
    if moduleLog.strip():
        lines += ["", "Module log (last lines):", "```", _lastLines(moduleLog, LOG_LINES_KEPT), "```"]
    return "\n".join(lines) + "\n"


def collectDiagnostics(engine: Engine, slicerVersion: str, moduleLog: str = "",
                       timeout: float = INFO_TIMEOUT_SECONDS) -> str:
    return reportText(slicerVersion, engineInfo(engine, timeout), moduleLog)


class DiagnosticsCollector:
    """``collectDiagnostics`` in a background thread: ``start()``, then poll ``done`` and read ``text``."""

    def __init__(self, engine: Engine, slicerVersion: str, moduleLog: str = "",
                 timeout: float = INFO_TIMEOUT_SECONDS) -> None:
        self._arguments = (engine, slicerVersion, moduleLog, timeout)
        self._thread: Optional[threading.Thread] = None
        self.text = ""

    def start(self) -> "DiagnosticsCollector":
        self._thread = threading.Thread(target=self._run, name="HSAM diagnostics", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.text = collectDiagnostics(*self._arguments)
        except Exception as exc:  # the report must come back in any case; it says what failed
            self.text = reportText(self._arguments[1], {"error": f"collecting failed: {exc!r}"}, self._arguments[2])

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()
