"""Running ``hsam evaluate`` as a user does (its own process) and reading its report."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsam", "evaluate", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def dice_by_organ(report: Path) -> dict:
    return {row.split(",")[1]: float(row.split(",")[2])
            for row in (Path(report) / "metrics.csv").read_text().splitlines()[1:]}
