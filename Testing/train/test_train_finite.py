"""Training never runs on, saves or reports numbers that are not finite: options are checked before any work, a run
whose loss or weights stop being finite ends with an error and keeps what was saved before, and the JSON-lines
stream stays strict JSON. Real ``hsam train`` processes on real BTCV slices with a tiny model."""
from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import BTCV_LABEL_MAP, btcv_pairs, synthetic_case, tiny_settings, write_volume

from hsam.progress import JsonLinesReporter
from hsam.train import TrainingError, TrainingStopped, TrainSettings, train
from hsam.train.options import flag
from hsam.train.checkpoint import load_state, state_path


def _strict(line: str):
    """json.loads that refuses NaN and Infinity, as JavaScript's and most other JSON readers do."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(line, parse_constant=refuse)


def _train_command(out, data_dir, *flags):
    command = [sys.executable, "-m", "hsam", "train", "--base", "litemedsam_tiny", "--out", str(out),
               "--label-map", str(BTCV_LABEL_MAP), "--slice-fraction", "0.025", "--batch-size", "2",
               "--val-slices", "2", "--lora-rank", "2", "--epochs", "2", "--progress", "jsonl", *flags]
    for image, label in btcv_pairs(data_dir):
        command += ["--case", image, label]
    return command


def _run(command, **env):
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ, **env))


@pytest.mark.parametrize("flags, needle", [
    (["--lr", "inf"], "argument --lr: must be in (0, 1], not inf"),
    (["--lr", "nan"], "argument --lr: must be in (0, 1], not nan"),
    (["--lr", "1e39"], "argument --lr: must be in (0, 1], not 1e+39"),
    (["--weight-decay=-inf"], "argument --weight-decay: must be in [0, 10], not -inf"),
    (["--ema", "nan"], "argument --ema: must be in [0, 1), not nan"),
    (["--slice-fraction", "1e999"], "argument --slice-fraction: must be in (0, 1], not inf"),
    (["--dice-weight", "NaN"], "argument --dice-weight: must be in [0, 1], not nan"),
    (["--organ-jitter", "-0.1"], "argument --organ-jitter: must be in [0, 0.5], not -0.1"),
    (["--epochs", "0"], "argument --epochs: must be at least 1 (an integer), not 0"),
    (["--seed", "-1"], "argument --seed: must be at least 0 (an integer), not -1"),
    (["--val-cases", "0"], "argument --val-cases: must be at least 1 (an integer), not 0"),
])
def test_a_number_out_of_range_is_a_usage_error_before_any_work(tmp_path, flags, needle):
    out = tmp_path / "model"
    result = _run([sys.executable, "-m", "hsam", "train", "--out", str(out), "--case", "a.nii.gz", "b.nii.gz",
                   *flags])
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"hsam train: error: {needle}")
    assert not out.exists()


@pytest.mark.parametrize("setting, value", [
    ("lr", math.inf), ("lr", math.nan), ("weight_decay", math.nan), ("ema", math.nan), ("dice_weight", math.inf),
    ("slice_fraction", math.nan), ("empty_slice_fraction", -math.inf), ("organ_jitter", math.nan),
    ("epochs", 2.5), ("batch_size", 0), ("warmup_steps", -1), ("early_stop", 0), ("seed", -3), ("val_cases", 0),
])
def test_the_python_api_checks_the_same_bounds(tmp_path, setting, value):
    """What the Slicer module and scripts pass never goes through argparse."""
    with pytest.raises(TrainingError, match=f"^{flag(setting)} must be"):
        TrainSettings(out=str(tmp_path), **{setting: value}).validate()


def test_a_diverging_run_stops_with_an_error_and_keeps_the_last_good_epoch(data_dir, tmp_path):
    out = tmp_path / "model"
    # Allowed values, but together they make every weight grow ~9-fold per step: epoch 1 ends, epoch 2 overflows.
    result = _run(_train_command(out, data_dir, "--lr", "1", "--weight-decay", "10"))
    assert result.returncode == 1, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("hsam: error: training diverged at step 5: the weights are no longer finite, so the "
                            "run stops without saving these weights")
    assert f"{out} keeps the model of epoch 1 and {state_path(out)} the last state saved before it" in error
    events = [_strict(line) for line in result.stdout.splitlines()]  # strict JSON on every line
    names = [e["event"] for e in events]
    assert "done" not in names and names[-1] == "error" and events[-1]["message"] in error
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1]
    card = json.loads((out / "model.json").read_text())
    assert card["training"]["status"] == "diverged" and card["training"]["epochs_done"] == 1
    weights = load_file(str(out / "weights.safetensors"))
    assert weights and all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    state = load_state(state_path(out))
    assert state.progress.epoch == 1 and state.progress.step_in_epoch == 0
    assert all(torch.isfinite(t).all() for t in state.model.values())


@pytest.mark.parametrize("value, message", [
    (1e30, r"training diverged at step 1: the loss is nan \(not a finite number\)"),
    (math.nan, "holds weights that are not finite"),
])
def test_a_loss_or_a_saved_state_that_is_not_finite_is_never_trained_on(data_dir, tmp_path, value, message):
    """Huge (finite) weights give a NaN loss, which must stop the run before the optimiser step; a state holding
    NaN weights (an earlier version saved those) must not be resumed. Neither overwrites the saved state."""
    settings = tiny_settings(tmp_path / "model", btcv_pairs(data_dir))
    with pytest.raises(TrainingStopped):
        train(settings, stop_at_step=0)
    state = torch.load(state_path(settings.out), weights_only=True)
    for tensor in state["model"].values():
        tensor.fill_(value)
    torch.save(state, state_path(settings.out))
    written = state_path(settings.out).read_bytes()
    settings.resume = True
    with pytest.raises(TrainingError, match=message):
        train(settings)
    assert state_path(settings.out).read_bytes() == written
    assert not (tmp_path / "model" / "weights.safetensors").exists()


def test_a_case_with_nan_voxels_is_refused_before_training(tmp_path):
    image, label = synthetic_case(tmp_path, "a")
    values = np.zeros((6, 32, 32), dtype=np.float32)
    values[2, 5, 5] = np.nan
    bad = write_volume(tmp_path / "nan_ct.mha", values)  # NaN does not survive NIfTI via SimpleITK
    other = synthetic_case(tmp_path, "b")
    settings = tiny_settings(tmp_path / "model", [(bad, label), other])
    with pytest.raises(TrainingError, match=r"nan_ct\.mha gives NaN or infinite intensities"):
        train(settings)
    assert not state_path(tmp_path / "model").exists()


def test_the_json_lines_stream_is_strict_json():
    stream = io.StringIO()
    JsonLinesReporter(stream).event("epoch", loss=math.nan, lr=math.inf, best=-math.inf, dice={"liver": math.nan},
                                    history=[1.5, math.nan], mean=np.float32(0.25), count=np.int64(3), ok=True)
    event = _strict(stream.getvalue())
    assert event == {"event": "epoch", "loss": None, "lr": None, "best": None, "dice": {"liver": None},
                     "history": [1.5, None], "mean": 0.25, "count": 3, "ok": True}
    with pytest.raises(TypeError):  # anything else that is not JSON fails where it is written
        JsonLinesReporter(io.StringIO()).event("log", message=object())
