"""Cancel through the stop file, the request Windows depends on (it has no SIGTERM for a child process): here on
Linux with SIGTERM turned off, so the file alone must stop the process. Real child processes throughout: a small
Python program that behaves like the engine, and the real ``hsam train``."""
from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import pytest

from slicer_segment_fixtures import MODULE_DIR  # noqa: F401  (puts the module on sys.path)

from HSAMSharedLib.worker import EXIT_STOPPED, STOP_FILE_VARIABLE, WorkerProcess

# Like the engine: ignores SIGTERM here (Windows never sends it), polls the stop file, saves, exits with 3.
ENGINE_LIKE = textwrap.dedent("""
    import json, os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stop_file, checkpoint = os.environ["HSAM_STOP_FILE"], sys.argv[1]
    print(json.dumps({"event": "log", "message": stop_file}), flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(stop_file):
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
    time.sleep(float(sys.argv[2]))  # saving takes a while
    with open(checkpoint, "w") as f:
        f.write("state")
    print("hsam: error: stopped by request; continue with --resume", file=sys.stderr)
    sys.exit(3)
""")


def first_events(worker: WorkerProcess, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = worker.events()
        if events:
            return events
        assert worker.poll() is None, worker.stderrText()
        time.sleep(0.05)
    raise AssertionError("no event from the child process")


def start_engine_like(tmp_path, save_seconds: float, grace: float) -> WorkerProcess:
    worker = WorkerProcess([sys.executable, "-c", ENGINE_LIKE, str(tmp_path / "checkpoint"), str(save_seconds)],
                           cancelGraceSeconds=grace)
    worker.signalOnCancel = False  # the Windows path: only the stop file asks
    worker.start()
    return worker


def test_the_child_gets_a_fresh_stop_file_path_that_is_removed_afterwards(tmp_path):
    worker = start_engine_like(tmp_path, 0, grace=30)
    told = first_events(worker)[0]["message"]
    assert told == str(worker.stopFile) and not os.path.exists(told)
    assert worker.stopFile.name == "stop-request"
    worker.cancel()
    assert worker.wait(60) == EXIT_STOPPED
    assert not worker.stopFile.parent.exists()  # nothing left in the temporary folder


def test_cancel_waits_for_the_engine_to_save_before_anything_is_killed(tmp_path):
    worker = start_engine_like(tmp_path, save_seconds=1.5, grace=30)
    first_events(worker)
    started = time.monotonic()
    worker.cancel()
    assert worker.stopFile.is_file()
    code = worker.wait(60)
    assert code == EXIT_STOPPED, worker.stderrText()  # exited on its own, not killed
    assert time.monotonic() - started >= 1.5
    assert (tmp_path / "checkpoint").read_text() == "state"
    assert "continue with --resume" in worker.errorText()


def test_a_process_that_ignores_the_stop_file_is_killed_after_the_grace_period(tmp_path):
    worker = start_engine_like(tmp_path, save_seconds=60, grace=1.0)
    first_events(worker)
    started = time.monotonic()
    worker.cancel()
    code = worker.wait(30)
    assert code is not None and code != EXIT_STOPPED
    assert 1.0 <= time.monotonic() - started < 20
    assert not (tmp_path / "checkpoint").exists()


def test_child_output_is_utf8_whatever_code_page_the_caller_had():
    # PYTHONIOENCODING=cp1252 stands for Windows' console code page; the worker overrides it for the child.
    code = "import sys; print('hsam: error: Größe — 肝臓 not found', file=sys.stderr); sys.exit(1)"
    worker = WorkerProcess([sys.executable, "-c", code], env=dict(os.environ, PYTHONIOENCODING="cp1252"))
    worker.start()
    assert worker.wait(60) == 1
    assert worker.errorText() == "Größe — 肝臓 not found"


def test_real_training_stopped_through_the_stop_file_keeps_a_resumable_checkpoint(data_dir, tmp_path):
    stop = pytest.importorskip("hsam.stop", reason="the engine does not read HSAM_STOP_FILE yet")
    from train_fixtures import BTCV_LABEL_MAP, btcv_pairs

    from hsam.train.checkpoint import load_state, state_path

    assert stop.STOP_FILE_VARIABLE == STOP_FILE_VARIABLE and stop.EXIT_STOPPED == EXIT_STOPPED
    out = tmp_path / "model"
    command = [sys.executable, "-m", "hsam", "train", "--base", "litemedsam_tiny", "--out", str(out),
               "--label-map", str(BTCV_LABEL_MAP), "--slice-fraction", "0.025", "--batch-size", "2",
               "--val-slices", "2", "--lora-rank", "2", "--epochs", "50", "--progress", "jsonl"]
    for image, label in btcv_pairs(data_dir):
        command += ["--case", image, label]
    worker = WorkerProcess(command, cancelGraceSeconds=120)
    worker.signalOnCancel = False
    worker.start()
    events, deadline = [], time.monotonic() + 300
    while not any(e["event"] == "step" for e in events):
        assert worker.poll() is None and time.monotonic() < deadline, worker.stderrText()
        events += worker.events()
        time.sleep(0.05)
    worker.cancel()
    assert worker.wait(300) == EXIT_STOPPED, worker.stderrText()
    events += worker.events()
    assert [e["event"] for e in events][-2:] == ["checkpoint", "stopped"], json.dumps(events[-3:])
    assert load_state(state_path(out)).progress.step_in_epoch == events[-1]["step"]
