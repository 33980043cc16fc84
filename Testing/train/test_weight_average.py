"""hsam train --ema: the moving average of the weights is what gets validated and saved, and resumes exactly."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from train_fixtures import btcv_pairs, tiny_settings

import hsam
from hsam.cli import build_parser
from hsam.commands.train import settings_from_args
from hsam.train import TrainingError, TrainingStopped, train
from hsam.train.checkpoint import state_path
from hsam.train.weight_average import WeightAverage


def test_the_average_follows_the_weights_and_is_swapped_in_and_out():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    net[1].weight.requires_grad_(False)  # frozen parameters are not averaged
    average = WeightAverage(net, decay=0.9)
    assert set(average.average) == {"0.weight", "0.bias", "1.bias"}
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    average.update(step=100)  # past the ramp: decay 0.9
    assert torch.allclose(average.average["0.weight"], start + 0.1)
    assert average.effective_decay(0) == pytest.approx(0.1)  # early steps follow the weights closely
    own = net[0].weight.detach().clone()
    with average.applied():
        assert torch.allclose(net[0].weight, start + 0.1)
    assert torch.equal(net[0].weight, own)
    restored = WeightAverage(net, decay=0.9)
    restored.load_state_dict(average.state_dict())
    assert torch.equal(restored.average["0.weight"], average.average["0.weight"])
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(net, decay=1.0)


def test_the_saved_model_is_the_average_and_a_resumed_run_matches(data_dir, tmp_path):
    def settings(out):
        return tiny_settings(out, btcv_pairs(data_dir), freeze_encoder=True, cached_views=1, epochs=2, ema=0.8,
                             no_validation=True)

    straight = tmp_path / "straight"
    train(settings(straight))
    state = torch.load(state_path(straight), weights_only=True)
    saved = dict(hsam.load_model(straight).named_parameters())
    averaged = state["average"]
    assert averaged and all(torch.allclose(saved[name].float(), tensor) for name, tensor in averaged.items())
    assert any(not torch.equal(state["model"][name], tensor) for name, tensor in averaged.items())

    resumed = settings(tmp_path / "resumed")
    with pytest.raises(TrainingStopped):
        train(resumed, stop_at_step=4)  # mid-epoch 2
    resumed.resume = True
    train(resumed)
    assert (tmp_path / "resumed" / "weights.safetensors").read_bytes() == \
        (straight / "weights.safetensors").read_bytes()


def test_ema_zero_saves_the_last_weights(data_dir, tmp_path):
    out = tmp_path / "last"
    train(tiny_settings(out, btcv_pairs(data_dir), freeze_encoder=True, cached_views=1, epochs=1, ema=0.0,
                        no_validation=True))
    state = torch.load(state_path(out), weights_only=True)
    saved = dict(hsam.load_model(out).named_parameters())
    assert state["average"] is None
    common = [name for name in saved if name in state["model"]]
    assert common and all(torch.equal(saved[name], state["model"][name]) for name in common)


def test_on_by_default_off_with_zero_and_bad_values_are_refused(tmp_path):
    def ema(*flags):
        return settings_from_args(build_parser().parse_args(["train", "--out", str(tmp_path / "m"), *flags])).ema

    assert ema() == 0.98 and ema("--ema", "0.9") == 0.9 and ema("--ema", "0") == 0.0
    with pytest.raises(TrainingError, match="--ema must be in"):
        train(tiny_settings(tmp_path / "bad", [], ema=1.5))
