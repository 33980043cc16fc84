"""The stop request every OS can send: the file named by HSAM_STOP_FILE (what the Slicer modules create on Cancel,
since Windows has no SIGTERM for a child), Ctrl-C twice, and Ctrl-C or SIGTERM while the command starts up.
Real ``hsam`` processes throughout."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from train_fixtures import BTCV_LABEL_MAP, btcv_pairs

from hsam.stop import EXIT_STOPPED, STOP_FILE_VARIABLE, StopRequest, StopRequested
from hsam.train.checkpoint import load_state, state_path


def _start(command, stop_file):
    env = dict(os.environ, **{STOP_FILE_VARIABLE: str(stop_file)})
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _stop_at_first(proc, event_name, stop_file):
    """Create the stop file at the first ``event_name`` event; returns (events, stderr)."""
    events = []
    try:
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == event_name:
                stop_file.write_text("")
                break
        rest, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    return events + [json.loads(line) for line in rest.splitlines()], err


def test_stop_file_stops_training_with_a_checkpoint_that_resume_continues(data_dir, tmp_path):
    out, stop_file = tmp_path / "model", tmp_path / "stop-request"
    command = [sys.executable, "-m", "hsam", "train", "--base", "litemedsam_tiny", "--out", str(out),
               "--label-map", str(BTCV_LABEL_MAP), "--slice-fraction", "0.025", "--batch-size", "2",
               "--val-slices", "2", "--lora-rank", "2", "--epochs", "2", "--progress", "jsonl"]
    for image, label in btcv_pairs(data_dir):
        command += ["--case", image, label]
    proc = _start(command, stop_file)
    events, err = _stop_at_first(proc, "step", stop_file)
    assert proc.returncode == EXIT_STOPPED, err
    assert "continue with --resume" in err
    assert [e["event"] for e in events][-2:] == ["checkpoint", "stopped"]
    stopped_at = events[-1]["step"]
    assert 1 <= stopped_at < 3 and load_state(state_path(out)).progress.step_in_epoch == stopped_at
    assert stop_file.exists()  # the engine never deletes the caller's file

    stop_file.unlink()  # the caller names a fresh (absent) path for the next run
    resumed = _start(command + ["--resume"], stop_file)
    rest, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    lines = [json.loads(line) for line in rest.splitlines()]
    assert any(e["event"] == "log" and e["message"].startswith(f"resuming at epoch 1, step {stopped_at + 1}")
               for e in lines)
    steps = [e["step"] for e in lines if e["event"] == "step"]
    assert steps[0] == stopped_at + 1 and steps[-1] == 6  # continued, not restarted
    assert lines[-1]["event"] == "done" and lines[-1]["status"] == "complete"
    assert json.loads((out / "model.json").read_text())["training"]["status"] == "complete"


def test_stop_file_stops_segmentation_with_exit_3_and_no_output(tiny_model, data_dir, tmp_path):
    ct = data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz"  # 117 slices: long enough to interrupt
    results, stop_file = tmp_path / "results", tmp_path / "stop-request"
    results.mkdir()
    proc = _start([sys.executable, "-m", "hsam", "segment", str(ct), "-o", str(results / "out.seg.nrrd"),
                   "--model", str(tiny_model), "--progress", "jsonl", "--batch-size", "2"], stop_file)
    events, err = _stop_at_first(proc, "progress", stop_file)
    assert proc.returncode == EXIT_STOPPED, err
    assert events[-1]["event"] == "error" and events[-1]["cancelled"]
    done = [e["done"] for e in events if e["event"] == "progress"]
    assert done[-1] < done[0] + 20  # stopped within a few batches, not at the end of the volume
    assert list(results.iterdir()) == []  # neither the output nor a temporary file


def test_a_stale_stop_file_stops_before_any_work(tiny_model, data_dir, tmp_path):
    stop_file = tmp_path / "stop-request"
    stop_file.write_text("")
    ct = data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz"
    proc = _start([sys.executable, "-m", "hsam", "segment", str(ct), "-o", str(tmp_path / "out.nii.gz"),
                   "--model", str(tiny_model), "--progress", "jsonl"], stop_file)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_STOPPED, err
    assert not (tmp_path / "out.nii.gz").exists()


def test_one_ctrl_c_asks_and_a_second_stops_at_once(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job ignores it)
    stop = StopRequest(stop_file=str(tmp_path / "absent"))
    with stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(StopRequested):
            stop.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored after the block
    signal.signal(signal.SIGINT, before)


def _interrupt_while_importing_torch(sig):
    """Start ``hsam segment`` and send ``sig`` once torch's import has begun (told by -X importtime), before any
    command has installed its handlers."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "hsam", "segment", "absent.nii.gz", "-o",
                             "out.nii.gz"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            # Ctrl-C as in a terminal, even when this test runs as a background job (which ignores it)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.rstrip().endswith(" torch._utils"):  # one of the first modules torch's import loads
            proc.send_signal(sig)
            break
    _, err = proc.communicate(timeout=120)
    assert seen[-1].rstrip().endswith(" torch._utils"), "torch's import was not seen"
    return proc.returncode, [line for line in err.splitlines() if not line.startswith("import time:")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_during_start_up_exits_3_with_one_line(sig):
    returncode, lines = _interrupt_while_importing_torch(sig)
    assert returncode == EXIT_STOPPED, lines
    assert lines == ["hsam: stopped by request"]
