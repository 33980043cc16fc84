"""The GPU check's ``--quick`` form: ``benchmarks/gpu/run.sh`` (with this interpreter, so nothing is installed)
runs every part of ``check.py`` for real on the CPU with tiny sizes, and its table has every row with a number."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from hsam.precision import inference_autocast_dtype

REPO = Path(__file__).resolve().parents[2]
# The start of each row's name; the rest names sizes and devices.
ROWS = [
    "labels cpu (auto precision) = cpu", "labels cpu (fp32 precision) = cpu",
    "sam_vit_tiny (random weights) at 64: batched bf16", "sam_vit_tiny (random weights) at 64: naive loop",
    "sam_vit_tiny (random weights) at 64: speed-up over the naive loop",
    "sam_vit_tiny (random weights) at 64: share of the bf16 matmul peak",
    "sam_vit_tiny (random weights) at 64: peak memory",
    "tiny on the 256x256x6 CT: batched bf16", "tiny on the 256x256x6 CT: speed-up over the naive loop",
    "tiny on the 256x256x6 CT: share of the bf16 matmul peak",
    "tiny on the 256x256x6 CT: model time for the whole 256x256x6 CT",
    "hsam segment of the 256x256x6 CT, whole command", "LoRA training, litemedsam_tiny rank 2",
    "run.sh setup", "run.sh in all", "the checks, wall time",
]


def _table(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith("|")][2:]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def test_quick_check_prints_and_writes_every_row_with_a_number(data_dir, tiny_model, tmp_path):
    out = tmp_path / "check"
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu" / "run.sh"), str(out), "--quick",
                             "--data", str(data_dir), "--model", str(tiny_model)],
                            capture_output=True, text=True, timeout=900, env=dict(os.environ, PYTHON=sys.executable))
    assert result.returncode == 0, result.stderr[-3000:]
    report = (out / "gpu_check.md").read_text()
    rows = _table(report)
    assert _table(result.stdout) == rows
    for start in ROWS:
        found = [name for name in rows if name.startswith(start)]
        assert found, (start, list(rows))
        for name in found:
            float(rows[name][0])  # a number, not "-" or "failed"
    labels = {name.split("(")[1].split()[0]: float(values[0]) for name, values in rows.items()
              if name.startswith("labels") and name.endswith("all voxels")}
    assert labels["fp32"] == 100.0  # the CPU in float32 against its own float32 reference
    if inference_autocast_dtype(torch.device("cpu"), "auto") is None:
        assert labels["auto"] == 100.0  # "auto" is float32 on this CPU too
    else:
        assert 0.0 < labels["auto"] <= 100.0  # bf16 against float32: a real agreement, not a copy
    assert not [name for name in rows if "FAILED" in name]
    assert "hsam train " in report and "hsam benchmark " in report  # the commands that made the numbers
    assert (out / "logs" / "train.txt").is_file() and (out / "whole.seg.nrrd").is_file()
