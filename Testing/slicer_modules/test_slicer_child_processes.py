"""Child processes of the HSAM modules start hidden on Windows (no console window that would kill the run when
closed), as ``slicer.util.launchConsoleProcess`` starts them, and every call that starts one uses those options."""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from slicer_segment_fixtures import MODULE_DIR, REPO

from HSAMSharedLib.worker import (CREATE_NEW_PROCESS_GROUP, STARTF_USESHOWWINDOW, SW_HIDE, childProcessOptions,
                                   utf8Environment)

MODULE_SOURCES = sorted(MODULE_DIR.rglob("*.py")) + sorted((REPO / "HSAMTrain").rglob("*.py"))
PROCESS_STARTERS = {("subprocess", name) for name in ("run", "Popen", "call", "check_call", "check_output")} | {
    ("os", name) for name in ("system", "popen", "startfile", "spawnv", "spawnl", "execv")}


def test_windows_children_get_a_hidden_console():
    options = childProcessOptions("win32")
    assert set(options) == {"startupinfo"}  # not a new process group unless asked
    info = options["startupinfo"]
    assert info.dwFlags & STARTF_USESHOWWINDOW and info.wShowWindow == SW_HIDE
    # The values launchConsoleProcess uses (Base/Python/slicer/util.py: dwFlags = 1, wShowWindow = 0).
    assert (STARTF_USESHOWWINDOW, SW_HIDE) == (1, 0)


def test_windows_engine_processes_also_get_their_own_process_group():
    options = childProcessOptions("win32", ownProcessGroup=True)
    assert options["creationflags"] == CREATE_NEW_PROCESS_GROUP == 0x200
    assert options["startupinfo"].wShowWindow == SW_HIDE
    if sys.platform == "win32":  # the real constants, where they exist
        assert CREATE_NEW_PROCESS_GROUP == subprocess.CREATE_NEW_PROCESS_GROUP
        assert STARTF_USESHOWWINDOW == subprocess.STARTF_USESHOWWINDOW and SW_HIDE == subprocess.SW_HIDE


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_posix_children_need_no_window_options(platform):
    assert childProcessOptions(platform) == {}
    assert childProcessOptions(platform, ownProcessGroup=True) == {"start_new_session": True}


def test_a_child_started_with_the_options_of_this_system_runs_in_its_own_session():
    code = "import os, sys; print(os.getsid(0) if hasattr(os, 'getsid') else -1); print(sys.stdout.encoding)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=utf8Environment(),
                            timeout=60, **childProcessOptions(ownProcessGroup=True))
    session, encoding = result.stdout.split()
    if hasattr(os, "getsid"):
        assert int(session) != os.getsid(0)
    assert encoding.lower() in ("utf-8", "utf8")


def _process_calls(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in PROCESS_STARTERS:
            yield node


def _uses_child_process_options(call: ast.Call) -> bool:
    return any(keyword.arg is None and isinstance(keyword.value, ast.Call)
               and getattr(keyword.value.func, "id", None) == "childProcessOptions" for keyword in call.keywords)


def test_every_child_process_of_both_modules_starts_with_the_hidden_options():
    calls = [(path, call) for path in MODULE_SOURCES for call in _process_calls(path)]
    assert len(calls) >= 4  # the engine worker, taskkill, nvidia-smi, pip show
    offenders = [f"{path.relative_to(REPO)}:{call.lineno}" for path, call in calls
                 if not _uses_child_process_options(call)]
    assert not offenders, "start these with **childProcessOptions(): " + ", ".join(offenders)
