"""Running the ``hsam`` commands as a user does (each in its own process) and reading what they leave."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import List


def evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsam", "evaluate", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def dice_by_organ(report: Path) -> dict:
    return {row.split(",")[1]: float(row.split(",")[2])
            for row in (Path(report) / "metrics.csv").read_text().splitlines()[1:]}


def segment_stopped_at_first_progress(*args: str) -> List[dict]:
    """``hsam segment ARGS --progress jsonl``, sent SIGTERM at its first progress event; asserts exit 3 (stopped)
    and returns the events it wrote after that."""
    proc = subprocess.Popen([sys.executable, "-m", "hsam", "segment", *map(str, args), "--progress", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if json.loads(line)["event"] == "progress":
            os.kill(proc.pid, signal.SIGTERM)
            break
    rest, errors = proc.communicate(timeout=120)
    assert proc.returncode == 3, errors
    return [json.loads(line) for line in rest.strip().splitlines()]
