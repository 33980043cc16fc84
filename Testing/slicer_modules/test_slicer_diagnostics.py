"""HSAM Segment's Diagnostics (Advanced section): the text a user pastes into a bug report, collected from the real
engine in a child process, GUI-free."""
from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "HSAMSegment") not in sys.path:
    sys.path.insert(0, str(REPO / "HSAMSegment"))

import hsam  # noqa: E402
import torch  # noqa: E402

from HSAMSharedLib.diagnostics import DiagnosticsCollector, collectDiagnostics, reportText  # noqa: E402
from HSAMSharedLib.engine import Engine  # noqa: E402


def test_report_from_the_real_engine(tmp_path):
    home = tmp_path / "models home"
    engine = Engine(python=sys.executable, modelsHome=home)
    text = collectDiagnostics(engine, "5.8.1 r33241", moduleLog="Listing models...\nSegmenting failed: out of memory")
    assert "- Slicer: 5.8.1 r33241" in text
    assert f"- Slicer's Python: {platform.python_version()}" in text
    assert f"- OS: {platform.platform()}" in text
    assert f"- Engine (hsam): {hsam.__version__}" in text
    assert f"- Engine Python: {platform.python_version()}" in text
    assert f"- PyTorch: {torch.__version__}" in text
    assert "- CUDA: " in text and "- GPUs: " in text
    assert f"- Models folder: {home}" in text  # the module's models folder reaches the engine
    assert "hsam-abdomen-ct" in text.split("- Models: ")[1].splitlines()[0]
    assert "no report" not in text
    log = text.split("Module log (last lines):")[1]
    assert "Segmenting failed: out of memory" in log and log.count("```") == 2


def test_an_engine_that_cannot_start_still_gives_a_report_that_says_why(tmp_path):
    engine = Engine(python=str(tmp_path / "no-python-here"), modelsHome=tmp_path)
    text = collectDiagnostics(engine, "5.10.0")
    assert "- Slicer: 5.10.0" in text
    assert "- Engine: no report (the engine could not be started" in text
    assert str(tmp_path / "no-python-here") in text


def test_engine_fields_are_formatted_for_reading(tmp_path):
    log_file = tmp_path / "logs" / "segment-20250101.log"
    log_file.parent.mkdir()
    log_file.write_text("".join(f"step {i}\n" for i in range(100)) + "hsam: error: CUDA out of memory\n")
    info = {"engine_version": "0.2.0", "python": "3.12.8", "platform": "Windows-11", "torch": "2.5.1+cu124",
            "cuda": "12.4", "gpus": [{"name": "NVIDIA RTX A4000", "memory_gb": 16.0}], "models_folder": "C:/h",
            "models": [{"id": "hsam-abdomen-ct", "version": "3", "state": "installed"}],
            "last_log": str(log_file),
            "compute_capability": "8.6"}
    text = reportText("5.10.0", info)
    assert "- GPUs: NVIDIA RTX A4000 (memory_gb 16.0)" in text
    assert "- Models: hsam-abdomen-ct 3 (installed)" in text
    assert "- compute_capability: 8.6" in text  # keys the engine adds later are not lost
    log = text.split("Last engine log:")[1]
    assert str(log_file) in log and "hsam: error: CUDA out of memory" in log
    assert "step 70" in log and "step 10\n" not in log  # its last lines only
    assert text.index("Engine (hsam)") < text.index("PyTorch") < text.index("Models folder")


def test_collector_runs_in_the_background(tmp_path):
    collector = DiagnosticsCollector(Engine(python=str(tmp_path / "absent"), modelsHome=tmp_path), "5.8.1")
    assert not collector.done
    collector.start()
    deadline = time.monotonic() + 30
    while not collector.done and time.monotonic() < deadline:
        time.sleep(0.05)
    assert collector.done and "- Engine: no report" in collector.text


def test_the_engine_reply_may_be_indented_or_follow_other_output():
    from HSAMSharedLib.diagnostics import _jsonObject

    assert _jsonObject('{\n  "torch": "2.5.1"\n}\n') == {"torch": "2.5.1"}
    assert _jsonObject('a warning from a library\n{"torch": "2.5.1"}\n') == {"torch": "2.5.1"}
    assert _jsonObject("[1, 2]") is None and _jsonObject("") is None


def test_the_last_engine_run_log_reaches_the_report(tmp_path):
    """Every engine run the modules start leaves a log in <models folder>/logs (the newest 20 are kept); the
    report shows the newest one, as the engine's `hsam info --json` names it."""
    from HSAMSharedLib.engine import LOGS_KEPT
    from HSAMSharedLib.worker import WorkerProcess

    home = tmp_path / "home"
    engine = Engine(python=sys.executable, modelsHome=home)
    for i in range(LOGS_KEPT + 5):
        old = home / "logs" / f"20200101-0000{i:02d}-1-1-segmentation.log"
        old.parent.mkdir(parents=True, exist_ok=True)
        old.write_text("old run\n")
    worker = WorkerProcess([sys.executable, "-c", "import sys; print('boom at slice 7', file=sys.stderr); "
                            "sys.exit(1)"], env=engine.environment(), logFile=engine.newLogFile("training"))
    worker.start()
    assert worker.wait(timeout=60) == 1
    logs = sorted((home / "logs").glob("*.log"))
    assert len(logs) == LOGS_KEPT and logs[-1] == worker.logFile  # the oldest went, the new one is the newest
    assert worker.logFile.read_text().rstrip().endswith("exit code 1")
    text = collectDiagnostics(engine, "5.8.1")
    log = text.split("Last engine log:")[1]
    assert str(worker.logFile) in log and "boom at slice 7" in log
