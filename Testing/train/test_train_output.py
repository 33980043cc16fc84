"""``hsam train --out``: a folder that cannot be written fails before any case is read, and ``--resume`` of a run
that already ended says so at once instead of reading and encoding every case again. Real ``hsam`` processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from train_fixtures import BTCV_LABEL_MAP, btcv_pairs

from hsam.train import TrainSettings
from hsam.train.checkpoint import state_path
from hsam.train.output_folder import inference_options


def _hsam_train(*args):
    return subprocess.run([sys.executable, "-m", "hsam", "train", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def _one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("hsam: error: "), result.stderr
    return lines[0]


# Cases that do not exist: if the output were checked after the cases, the error would be about them.
MISSING_CASE = ("--case", "missing_ct.nii.gz", "missing_label.nii.gz")


def test_out_that_is_a_file_fails_before_any_work(tmp_path):
    out = tmp_path / "model.txt"
    out.write_text("keep me")
    error = _one_line_error(_hsam_train("--out", out, *MISSING_CASE))
    assert f"--out {out} is a file" in error
    assert out.read_text() == "keep me"


def test_out_inside_a_file_fails_before_any_work(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    error = _one_line_error(_hsam_train("--out", tmp_path / "notes.txt" / "model", *MISSING_CASE))
    assert f"{tmp_path / 'notes.txt'} is a file, so no folder can be made inside it" in error


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into any folder")
def test_out_in_a_read_only_folder_fails_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    error = _one_line_error(_hsam_train("--out", locked / "model", *MISSING_CASE))
    assert f"cannot write in {locked}" in error


def test_resume_of_a_finished_run_does_nothing_and_says_so(data_dir, tmp_path):
    out = tmp_path / "model"
    command = ["--base", "litemedsam_tiny", "--out", out, "--label-map", BTCV_LABEL_MAP, "--slice-fraction",
               "0.025", "--batch-size", "2", "--val-slices", "2", "--lora-rank", "2", "--epochs", "1"]
    for image, label in btcv_pairs(data_dir):
        command += ["--case", image, label]
    first = _hsam_train(*command, "--progress", "jsonl")
    assert first.returncode == 0, first.stderr
    saved = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (state_path(out), out / "weights.safetensors",
                                                                   out / "model.json")}

    again = _hsam_train(*command, "--progress", "jsonl", "--resume")
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert [e["event"] for e in events] == ["log", "done"]  # no reading, encoding, step or checkpoint
    assert events[0]["message"] == (f"the run in {out} has already ended (complete after 1 epochs): nothing to "
                                    "resume; train again with a new --out")
    done = json.loads(first.stdout.splitlines()[-1])
    assert events[1] == done  # the same summary as when it ended
    assert all((p.stat().st_mtime_ns, p.read_bytes()) == before for p, before in saved.items())

    people = _hsam_train(*command, "--resume")  # the same, as a person sees it
    assert people.returncode == 0 and "has already ended" in people.stderr
    assert json.loads(people.stdout)["status"] == "complete"


def test_the_inference_options_given_to_training_are_the_models_defaults(data_dir, tmp_path):
    out = tmp_path / "model"
    (image, label), *_ = btcv_pairs(data_dir)
    command = ["--base", "litemedsam_tiny", "--out", out, "--label-map", BTCV_LABEL_MAP, "--case", image, label,
               "--no-validation", "--slice-fraction", "0.025", "--batch-size", "2", "--epochs", "1"]
    # The box prompts need LiteMedSAM's own decoder: refused before any case is read, nothing written.
    error = _one_line_error(_hsam_train(*command, "--box-prompts", "0.5"))
    assert "--box-prompts needs a model on the LiteMedSAM backbone" in error and not out.exists()

    trained = _hsam_train(*command, "--slice-smoothing", "0.25", "--progress", "none")
    assert trained.returncode == 0, trained.stderr
    assert json.loads((out / "model.json").read_text())["inference"] == {"slice_smoothing": 0.25}
    segment = subprocess.run([sys.executable, "-m", "hsam", "segment", image, "--model", out, "-o",
                              tmp_path / "seg.nii.gz"], capture_output=True, text=True, timeout=300)
    assert segment.returncode == 0, segment.stderr
    assert "inference options: --slice-smoothing 0.25" in segment.stdout + segment.stderr

    # Fine-tuned from that model, a new model keeps its options unless told otherwise; 0 turns one off.
    tuned = tmp_path / "tuned"
    again = _hsam_train("--base", out, "--out", tuned, *command[4:], "--progress", "none")
    assert again.returncode == 0, again.stderr
    assert json.loads((tuned / "model.json").read_text())["inference"] == {"slice_smoothing": 0.25}
    base_card = {"inference": {"slice_smoothing": 0.25, "box_prompts": 0.5}}
    assert inference_options(TrainSettings(out="x"), base_card) == base_card
    assert inference_options(TrainSettings(out="x", box_prompts=0.0), base_card) == {
        "inference": {"slice_smoothing": 0.25}}
    assert inference_options(TrainSettings(out="x", slice_smoothing=0.0, box_prompts=0.0), base_card) == {}
    assert inference_options(TrainSettings(out="x"), None) == {}  # a new model: off
