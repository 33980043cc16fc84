"""The ``hsam`` command as a user runs it: real processes, exit codes, one-line errors."""
from __future__ import annotations

import subprocess
import sys

import torch


def _hsam(*args):
    return subprocess.run([sys.executable, "-m", "hsam", *args], capture_output=True, text=True, timeout=300)


def test_info_runs_a_real_ct_slice(data_dir):
    ct = data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz"
    result = _hsam("info", "--image", str(ct))
    assert result.returncode == 0, result.stderr
    assert "backbone litemedsam (256x256 input)" in result.stdout
    assert "fused (1, 9, 256, 256)" in result.stdout


def test_convert_official_with_a_truncated_file(tmp_path):
    sam = tmp_path / "sam.pth"
    torch.save({"w": torch.ones(2)}, sam)
    broken = tmp_path / "220_epoch_299.pth"
    broken.write_bytes(sam.read_bytes()[:50])
    result = _hsam("convert-official", "--sam-checkpoint", str(sam), "--hsam-checkpoint", str(broken),
                   "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(broken) in lines[0] and lines[0].startswith("hsam: error:")
    assert not (tmp_path / "out").exists()
