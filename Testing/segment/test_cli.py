"""The ``hsam`` command as a user runs it: real processes, exit codes, one-line errors."""
from __future__ import annotations

import subprocess
import sys

import pytest
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


# Every command, as docs/command-line.md promises: wrong usage exits 2, an error 1, each with one `error:` line.
USAGE_ERRORS = {
    "": "hsam: error: the following arguments are required: command",
    "bogus": "hsam: error: argument command: invalid choice: 'bogus'",
    "info --bogus": "hsam: error: unrecognized arguments: --bogus",
    "convert-official": "hsam convert-official: error: the following arguments are required",
    "segment": "hsam segment: error: the following arguments are required: input",
    "evaluate": "hsam evaluate: error: the following arguments are required",
    "benchmark": "hsam benchmark: error: the following arguments are required: volume",
    "train --out m --epochs 1.5": "hsam train: error: argument --epochs: must be at least 1 (an integer), not '1.5'",
    "models": "hsam models: error: the following arguments are required: action",
}


@pytest.mark.parametrize("args", list(USAGE_ERRORS))
def test_wrong_usage_exits_2_for_every_command(args):
    result = _hsam(*args.split())
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(USAGE_ERRORS[args])


ERRORS = {
    "info /absent/model": "model '/absent/model' not found",
    "convert-official --sam-checkpoint /absent/a --hsam-checkpoint /absent/b --out {tmp}/c": "/absent/b",
    "segment /absent/ct.nii.gz -o {tmp}/out.nii.gz": "/absent/ct.nii.gz: no such file or folder",
    "evaluate /absent/model --labels /absent/labels.nii.gz": "/absent/labels.nii.gz: no such file or folder",
    "benchmark /absent/ct.nii.gz --backbone litemedsam_tiny --random": "/absent/ct.nii.gz",
    "train --out {tmp}/m --case /absent/a.nii.gz /absent/b.nii.gz --no-validation --progress none":
        "/absent/a.nii.gz: no such file or folder",
    "models remove absent-model": "'absent-model' is not installed",
}


@pytest.mark.parametrize("args", list(ERRORS))
def test_an_error_exits_1_with_one_line_for_every_command(args, tmp_path):
    result = _hsam(*args.format(tmp=tmp_path).split())
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("hsam: error:") and ERRORS[args] in lines[0], lines
    assert not any(tmp_path.iterdir())  # nothing written
