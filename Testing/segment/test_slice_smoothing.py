"""Probabilities mixed along the slice axis (hsam/infer/slice_smoothing.py): the same result whatever the batches,
the volume's ends handled, and the predictor's labels the argmax of the mixed probabilities."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import hsam
from hsam.infer.slice_predictor import SlicePredictor
from hsam.infer.slice_smoothing import SliceSmoother
from hsam.io.normalize import intensity_range


def _reference(probs: torch.Tensor, w: float) -> torch.Tensor:
    """The mix over the whole volume at once, each end slice standing in for its missing neighbour."""
    padded = torch.cat([probs[:1], probs, probs[-1:]])
    return padded[1:-1] * (1 - 2 * w) + (padded[:-2] + padded[2:]) * w


def _smooth_in_batches(probs: torch.Tensor, w: float, sizes) -> torch.Tensor:
    out = torch.full_like(probs, float("nan"))

    def write(first, chunk):
        assert torch.isnan(out[first:first + len(chunk)]).all(), "a slice was written twice"
        out[first:first + len(chunk)] = chunk

    smoother = SliceSmoother(w, write)
    start = 0
    for size in sizes:
        smoother.add(start, probs[start:start + size])
        start += size
    smoother.finish()
    return out


@pytest.mark.parametrize("sizes", [[7], [1] * 7, [3, 2, 2], [1, 6], [6, 1]])
def test_any_batching_gives_the_whole_volume_mix(sizes):
    probs = torch.softmax(torch.randn(7, 4, 5, 6, generator=torch.Generator().manual_seed(1)), dim=1)
    got = _smooth_in_batches(probs, 0.25, sizes)
    torch.testing.assert_close(got, _reference(probs, 0.25))
    assert not torch.allclose(got, probs)


def test_a_single_slice_and_weight_zero_are_unchanged():
    probs = torch.softmax(torch.randn(1, 3, 4, 4), dim=1)
    torch.testing.assert_close(_smooth_in_batches(probs, 0.3, [1]), probs)
    volume = torch.softmax(torch.randn(5, 3, 4, 4), dim=1)
    torch.testing.assert_close(_smooth_in_batches(volume, 0.0, [2, 3]), volume)


@pytest.mark.parametrize("weight", [-0.1, 0.5, 1.0])
def test_weights_outside_the_range_are_refused(weight):
    with pytest.raises(ValueError, match="slice smoothing weight"):
        SliceSmoother(weight, lambda *_: None)


def test_predictor_labels_are_the_argmax_of_the_mixed_probabilities():
    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny"), "random", seed=3).eval()
    model.card = {"normalization": {"kind": "ct_window", "window": [-125, 275]}}
    volume = np.random.default_rng(0).normal(40, 120, size=(6, 40, 48)).astype(np.float32)
    plain = SlicePredictor(copy.deepcopy(model), torch.device("cpu"), batch_size=6, precision="fp32")
    with torch.inference_mode():
        probs = plain._probabilities(volume, intensity_range(volume, plain.normalization))
    expected = _reference(probs, 0.25).argmax(1).numpy()
    assert (expected != probs.argmax(1).numpy()).any(), "the mix should change some labels of this volume"
    for batch in (1, 4):
        smoothed = SlicePredictor(copy.deepcopy(model), torch.device("cpu"), batch_size=batch, precision="fp32", slice_smoothing=0.25)
        labels, _ = smoothed.predict(volume)
        np.testing.assert_array_equal(labels, expected)


def test_the_model_cards_inference_options_apply_unless_given_others():
    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny"), "random", seed=3).eval()
    model.card = {"normalization": {"kind": "ct_window", "window": [-125, 275]}}
    volume = np.random.default_rng(0).normal(40, 120, size=(6, 40, 48)).astype(np.float32)

    def labels(card_inference, given):
        copied = copy.deepcopy(model)
        copied.card = dict(model.card, inference=card_inference)
        return SlicePredictor(copied, torch.device("cpu"), batch_size=2, precision="fp32",
                              slice_smoothing=given).predict(volume).labels

    smoothed, plain = labels({}, 0.25), labels({}, None)
    assert (smoothed != plain).any()
    np.testing.assert_array_equal(labels({"slice_smoothing": 0.25}, None), smoothed)  # the card's value
    np.testing.assert_array_equal(labels({"slice_smoothing": 0.25}, 0.0), plain)  # given: wins, even 0
    logged = []
    copied = copy.deepcopy(model)
    copied.card = dict(model.card, inference={"slice_smoothing": 0.25})
    SlicePredictor(copied, torch.device("cpu"), log=logged.append)
    assert logged == ["inference options: --slice-smoothing 0.25"]
