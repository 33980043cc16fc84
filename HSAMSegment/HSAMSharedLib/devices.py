"""Which devices to offer, found without importing torch (importing it into Slicer's process would block a later
PyTorch upgrade in the same session). The engine makes the authoritative check when it starts."""
import platform
import shutil
import subprocess
import sys
from typing import List

from .worker import childProcessOptions


def nvidiaGpuNames(timeout: float = 5.0) -> List[str]:
    """GPU names from ``nvidia-smi -L`` ("GPU 0: NVIDIA ... (UUID: ...)"); empty without a driver."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, errors="replace", timeout=timeout,
                             **childProcessOptions()).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split(":", 1)[1].split("(UUID")[0].strip() for line in out.splitlines()
            if line.startswith("GPU ") and ":" in line]


def deviceChoices() -> List[str]:
    """"auto" first (GPU when there is one, else CPU), then "cpu", one "cuda:N" per NVIDIA GPU, and "mps" on
    Apple silicon."""
    choices = ["auto", "cpu"] + [f"cuda:{index}" for index in range(len(nvidiaGpuNames()))]
    if sys.platform == "darwin" and platform.machine() == "arm64":
        choices.append("mps")
    return choices
