"""hsam train end to end with a tiny random model on a few real BTCV slices: learning, the model directory,
exact resume, --freeze-encoder, and segmenting a held-out case with the result."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from train_fixtures import btcv_pairs, tiny_settings

import hsam
from hsam.train import TrainingError, TrainingStopped, train
from hsam.train.checkpoint import state_path


def _final_weights(out):
    return torch.load(state_path(out), weights_only=True)["model"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, data_dir):
    """The reference: 3 epochs without interruption."""
    out = tmp_path_factory.mktemp("straight") / "model"
    summary = train(tiny_settings(out, btcv_pairs(data_dir), epochs=3))
    assert json.loads((out / "model.json").read_text())["training"]["steps"]["per_epoch"] == 3
    return out, summary


def test_loss_falls_and_the_output_is_a_complete_model(straight_run, data_dir):
    out, summary = straight_run
    card = json.loads((out / "model.json").read_text())
    history = card["training"]["history"]
    assert summary["status"] == "complete" and len(history) == 3
    assert history[-1]["loss"] < history[0]["loss"]
    # The stage weight's 300-epoch curve spans the 9 steps: epoch 3 ends at step 8, read at schedule epoch 266.7.
    assert [h["stage1_weight"] for h in history] == pytest.approx(
        [0.8 * math.exp(-0.005 * 300 * step / 9) for step in (2, 5, 8)], abs=1e-4)
    assert card["training"]["cases"]["val"] and not set(card["training"]["cases"]["val"]) & \
        set(card["training"]["cases"]["train"])  # validation by case
    assert set(card["metrics"]["val_dice"]) == {label["name"] for label in card["labels"]}
    assert card["labels"][0]["name"] == "spleen" and card["labels"][0]["terminology"]
    stats = card["class_statistics"]
    assert stats["pixel_counts"]["liver"] > stats["pixel_counts"]["gallbladder"]
    model = hsam.load_model(out)
    # The class-balanced noise travels with the model: rarer classes get more.
    variance = model.cmattn.noise_variance.tolist()
    assert variance == pytest.approx(list(stats["cmattn_noise_variance"].values()), abs=1e-6)
    assert variance[5] < variance[4]  # liver (common) < gallbladder (rare)


def test_resume_gives_the_same_weights_as_a_straight_run(straight_run, data_dir, tmp_path):
    reference, _ = straight_run
    settings = tiny_settings(tmp_path / "model", btcv_pairs(data_dir), epochs=3)
    with pytest.raises(TrainingStopped):
        train(settings, stop_at_step=4)  # in the middle of epoch 2 (3 steps per epoch)
    assert json.loads((tmp_path / "model" / "model.json").read_text())["training"]["status"] == "stopped"
    settings.resume = True
    with pytest.raises(TrainingStopped):
        train(settings, stop_at_step=6)  # exactly at an epoch boundary
    train(settings)
    expected, got = _final_weights(reference), _final_weights(tmp_path / "model")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert (tmp_path / "model" / "weights.safetensors").read_bytes() == \
        (reference / "weights.safetensors").read_bytes()
    settings.epochs = 4  # a different recipe is a different run
    with pytest.raises(TrainingError, match="was written with other settings.*epochs: 3 then, 4 now"):
        train(settings)


def test_freeze_encoder_trains_the_decoders_only(data_dir, tmp_path):
    settings = tiny_settings(tmp_path / "frozen", btcv_pairs(data_dir), freeze_encoder=True, cached_views=2,
                             epochs=2)
    summary = train(settings)
    card = json.loads((tmp_path / "frozen" / "model.json").read_text())
    assert card["config"]["lora_rank"] == 0 and summary["epochs_done"] == 2
    history = card["training"]["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    base = hsam.build_hsam(hsam.HSAMConfig(**card["config"]), "random", seed=settings.seed)
    trained = hsam.load_model(tmp_path / "frozen")
    assert all(torch.equal(a, b) for a, b in zip(base.backbone.state_dict().values(),
                                                 trained.backbone.state_dict().values()))  # encoder untouched
    assert not torch.equal(base.stage2.mask_tokens.weight, trained.stage2.mask_tokens.weight)


def test_the_trained_model_segments_a_held_out_case(straight_run, data_dir, tmp_path):
    out, _ = straight_run
    held_out = btcv_pairs(data_dir, ["case0030"])[0][0]
    pytest.importorskip("hsam.commands.segment")
    result = tmp_path / "case0030.nii.gz"
    run = subprocess.run([sys.executable, "-m", "hsam", "segment", held_out, "-o", str(result), "--model", str(out),
                          "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    import SimpleITK as sitk

    import numpy as np

    from hsam.infer.segment import segment_image
    from hsam.infer.slice_predictor import SlicePredictor

    labels, image = sitk.ReadImage(str(result)), sitk.ReadImage(held_out)
    assert labels.GetSize() == image.GetSize() and labels.GetSpacing() == pytest.approx(image.GetSpacing())
    assert labels.GetOrigin() == pytest.approx(image.GetOrigin())
    # The command segmented with what was trained: voxel for voxel the trained weights' prediction, in the classes
    # the trained model's card names.
    trained = hsam.load_model(out)
    expected, _, _ = segment_image(SlicePredictor(trained, torch.device("cpu"), batch_size=1), image)
    assert np.array_equal(sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(expected))
    values = {label["value"] for label in json.loads((out / "model.json").read_text())["labels"]}
    assert set(np.unique(sitk.GetArrayFromImage(labels)).tolist()) <= values | {0}
