"""SIGTERM stops ``hsam train`` at the next step: the state is saved, the exit code says "stopped", and
``--resume`` picks the run up again."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

from train_fixtures import BTCV_LABEL_MAP, btcv_pairs

from hsam.stop import EXIT_STOPPED
from hsam.train.checkpoint import load_state, state_path


def _stop_at_first(command, event_name):
    """Run ``command``, send SIGTERM at its first ``event_name`` event; returns (events, return code, stderr)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = []
    try:
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == event_name:
                proc.send_signal(signal.SIGTERM)
                break
        rest, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return events + [json.loads(line) for line in rest.splitlines()], proc.returncode, err


def test_sigterm_saves_and_exits_with_the_stop_code(data_dir, tmp_path):
    out = tmp_path / "model"
    command = [sys.executable, "-m", "hsam", "train", "--base", "litemedsam_tiny", "--out", str(out),
               "--label-map", str(BTCV_LABEL_MAP), "--slice-fraction", "0.025", "--batch-size", "2",
               "--val-slices", "2", "--lora-rank", "2", "--progress", "jsonl"]
    for image, label in btcv_pairs(data_dir):
        command += ["--case", image, label]
    events, returncode, err = _stop_at_first(command + ["--epochs", "50"], "step")
    assert returncode == EXIT_STOPPED, err
    assert "continue with --resume" in err
    names = [e["event"] for e in events]
    assert names[-2:] == ["checkpoint", "stopped"]
    state = load_state(state_path(out))
    stopped_at = events[-1]["step"]
    assert 1 <= stopped_at <= 2 and state.progress.step_in_epoch == stopped_at
    assert {"epoch", "step", "loss", "eta_s"} <= set(events[names.index("step")])
    resumed = subprocess.run(command + ["--resume", "--epochs", "1"],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 1 and "was written with other settings" in resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["event"] == "error"


def test_sigterm_while_caching_embeddings(data_dir, tmp_path):
    """With --freeze-encoder the first phase encodes every slice (minutes on a CPU): it reports progress and a
    stop request is honoured there too, and --resume then completes the run."""
    out = tmp_path / "model"
    command = [sys.executable, "-m", "hsam", "train", "--base", "litemedsam_tiny", "--out", str(out),
               "--label-map", str(BTCV_LABEL_MAP), "--slice-fraction", "0.05", "--batch-size", "2",
               "--val-slices", "2", "--freeze-encoder", "--epochs", "1", "--progress", "jsonl"]
    for image, label in btcv_pairs(data_dir):
        command += ["--case", image, label]
    events, returncode, err = _stop_at_first(command, "progress")
    first = next(e for e in events if e["event"] == "progress")
    assert first["stage"] == "caching embeddings" and first["total"] > first["done"]
    assert returncode == EXIT_STOPPED, err
    assert events[-1]["event"] == "stopped" and events[-1]["step"] == 0
    assert not any(e["event"] == "step" for e in events)
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["event"] == "done"
