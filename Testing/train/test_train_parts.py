"""hsam train building blocks: augmentation, slice picking, loss, schedules."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation

from hsam.train.augment import AugmentSettings, augment_slice
from hsam.train.case_loading import CaseVolume
from hsam.train.dataset import SliceSet, augmented_batch, pick_slices, validation_slices
from hsam.train.losses import dice_sums, hsam_loss, labels_at
from hsam.train.schedule import default_warmup, learning_rate, schedule_epoch, stage1_weight


def _slice():
    image = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    label = np.zeros((64, 64), dtype=np.uint8)
    label[20:40, 40:56] = 3  # "left kidney" on the image's left-hand side (high i = patient left)
    label[20:40, 8:24] = 2
    return image, label


def test_augmentation_keeps_labels_as_labels_and_never_mirrors():
    image, label = _slice()
    strong = AugmentSettings(rotate_p=1, scale_p=1, elastic_p=1)
    for seed in range(20):
        aug_image, aug_label = augment_slice(image, label, np.random.default_rng(seed), strong)
        assert aug_image.dtype == np.float32 and aug_label.dtype == np.uint8
        assert set(np.unique(aug_label)) <= {0, 2, 3}  # nearest: no invented in-between classes
        cols3 = np.nonzero(aug_label == 3)[1]
        cols2 = np.nonzero(aug_label == 2)[1]
        assert cols3.mean() > cols2.mean()  # left stays left: no flip
    again = augment_slice(image, label, np.random.default_rng(3), strong)
    first = augment_slice(image, label, np.random.default_rng(3), strong)
    assert np.array_equal(again[0], first[0]) and np.array_equal(again[1], first[1])


def test_augmentation_changes_the_slice_and_jitter_stays_in_range():
    image, label = _slice()
    changed = [not np.array_equal(augment_slice(image, label, np.random.default_rng(s))[1], label) for s in range(10)]
    assert sum(changed) >= 5
    jitter = AugmentSettings(rotate_p=0, scale_p=0, elastic_p=0, intensity_jitter=True)
    outs = [augment_slice(image, label, np.random.default_rng(s), jitter)[0] for s in range(10)]
    assert all(o.min() >= 0 and o.max() <= 1 for o in outs)
    assert any(not np.array_equal(o, image) for o in outs)


def test_organ_jitter_shifts_each_organ_by_its_own_amount_and_leaves_the_rest():
    image = np.full((64, 64), 0.4, dtype=np.float32)
    label = np.zeros((64, 64), dtype=np.uint8)
    label[10:30, 10:30], label[36:56, 36:56] = 1, 5
    organs = AugmentSettings(rotate_p=0, scale_p=0, elastic_p=0, organ_jitter=0.2, organ_jitter_p=1.0)
    shifted = [augment_slice(image, label, np.random.default_rng(s), organs)[0] for s in range(8)]
    for out in shifted:
        inner1, inner5 = out[15:25, 15:25], out[41:51, 41:51]
        assert np.ptp(inner1) < 1e-6 and np.ptp(inner5) < 1e-6  # one shift per organ
        assert abs(inner1[0, 0] - 0.4) <= 0.2 + 1e-6 and abs(inner5[0, 0] - 0.4) <= 0.2 + 1e-6
        assert np.allclose(out[label == 0][:100], 0.4)  # far from organs nothing moves
        assert out.min() >= 0 and out.max() <= 1
    assert len({round(float(o[20, 20] - o[46, 46]), 4) for o in shifted}) > 4  # organs move apart, not together
    # Drawn after the geometric transform: the same seed moves the slice the same way with or without it, so views
    # made without it (and their stored embeddings) stay what they were.
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    for s in range(5):
        a_image, a_label = augment_slice(ramp, label, np.random.default_rng(s), AugmentSettings())
        b_image, b_label = augment_slice(ramp, label, np.random.default_rng(s), AugmentSettings(organ_jitter=0.2))
        far = ~binary_dilation(a_label > 0, np.ones((3, 3)), iterations=5)  # beyond the reach of the softened organ edges
        assert np.array_equal(a_label, b_label) and np.array_equal(a_image[far], b_image[far])


def test_organ_levels_move_each_organ_to_a_random_level_and_keep_its_texture():
    rng = np.random.default_rng(0)
    texture = rng.normal(0, 0.02, size=(64, 64)).astype(np.float32)
    image = np.clip(0.3 + texture, 0, 1).astype(np.float32)
    label = np.zeros((64, 64), dtype=np.uint8)
    label[10:30, 10:30], label[36:56, 36:56] = 1, 5
    image[label == 5] += 0.4  # a bright organ, as a spleen on T2
    levels = AugmentSettings(rotate_p=0, scale_p=0, elastic_p=0, organ_levels_p=1.0)
    means = []
    for s in range(20):
        out = augment_slice(image, label, np.random.default_rng(s), levels)[0]
        inner1, inner5 = (slice(15, 25), slice(15, 25)), (slice(41, 51), slice(41, 51))
        for inner in (inner1, inner5):  # the texture moves as one piece (only clipping at 0 and 1 changes it)
            diff = out[inner] - image[inner]
            inside = (out[inner] > 0.001) & (out[inner] < 0.999)
            assert np.ptp(diff[inside]) < 1e-5
        assert np.allclose(out[label == 0][:100], image[label == 0][:100])  # background untouched
        means.append(float(out[inner5].mean()))
    assert min(means) < 0.2 and max(means) > 0.8  # the bright organ also becomes dark, and the reverse
    # Off by default, and drawn last: views made without it stay what they were.
    assert AugmentSettings().organ_levels_p == 0.0


def test_organ_gains_scale_each_organ_and_its_texture_together():
    rng = np.random.default_rng(0)
    image = np.clip(0.3 + rng.normal(0, 0.02, size=(64, 64)), 0, 1).astype(np.float32)
    label = np.zeros((64, 64), dtype=np.uint8)
    label[10:30, 10:30], label[36:56, 36:56] = 1, 4
    image[label == 4] += 0.4  # a bright spleen, as on T2
    gains = AugmentSettings(rotate_p=0, scale_p=0, elastic_p=0, organ_gain_p=1.0)
    inner1, inner4 = (slice(15, 25), slice(15, 25)), (slice(41, 51), slice(41, 51))
    spleen_means, liver_ratios = [], []
    for s in range(30):
        out = augment_slice(image, label, np.random.default_rng(s), gains)[0]
        for inner in (inner1, inner4):  # one gain per organ: texture and mean scale together (below the clip at 1)
            ratio = out[inner] / image[inner]
            if out[inner].max() < 0.999:
                assert np.ptp(ratio) < 1e-4 and 0.25 - 1e-4 <= ratio.mean() <= 2.0 + 1e-4
        assert np.allclose(out[label == 0][:100], image[label == 0][:100])  # background untouched
        spleen_means.append(float(out[inner4].mean()))
        liver_ratios.append(float((out[inner1] / image[inner1]).mean()))
    # The bright spleen also comes out darker than the background (0.3), as an iron-loaded spleen on T2 does,
    # and each organ draws its own gain.
    assert min(spleen_means) < 0.25 and max(spleen_means) > 0.9
    assert len({round(r, 3) for r in liver_ratios}) > 20
    assert AugmentSettings().organ_gain_p == 0.0


def test_coarse_views_blur_the_image_as_larger_pixels_would_and_keep_the_labels():
    from hsam.train.augment import coarser_pixels

    image = np.zeros((64, 64), np.float32)
    image[20:44, 16:48] = 1.0
    label = (image > 0).astype(np.uint8)
    for factor in (1.5, 3.0):
        out = coarser_pixels(image, factor)
        assert out.shape == image.shape and out.dtype == np.float32
        assert abs(out.mean() - image.mean()) < 0.01  # intensities are averaged, not lost
        edge = out[32, 10:22]
        assert 0.1 < edge.max() - edge.min() and ((edge > 0.05) & (edge < 0.95)).sum() >= int(factor)  # soft edge
    assert np.abs(coarser_pixels(image, 3.0) - image).mean() > np.abs(coarser_pixels(image, 1.5) - image).mean()
    settings = AugmentSettings(rotate_p=0, scale_p=0, elastic_p=0, coarse_p=1.0)
    out_image, out_label = augment_slice(image, label, np.random.default_rng(1), settings)
    assert np.array_equal(out_label, label) and not np.array_equal(out_image, image)
    # Off by default and drawn last: views made without it stay what they were.
    plain = AugmentSettings(organ_jitter=0.2)
    np.testing.assert_array_equal(
        augment_slice(image, label, np.random.default_rng(4), plain)[0],
        augment_slice(image, label, np.random.default_rng(4), AugmentSettings(organ_jitter=0.2, coarse_p=0.0))[0])
    assert AugmentSettings().coarse_p == 0.0


def _volume(name, depth=40, organ_slices=range(10, 30)):
    image = np.random.default_rng(0).random((depth, 32, 32), dtype=np.float32)
    label = np.zeros((depth, 32, 32), dtype=np.uint8)
    for z in organ_slices:
        label[z, 5:15, 5:15] = 1 + z % 3
    return CaseVolume(name, image, label)


def test_slice_picking_fraction_foreground_and_spread():
    volumes = [_volume("a"), _volume("b")]
    picked = pick_slices(volumes, fraction=0.25, empty_fraction=0.1, seed=1)
    assert len(picked) == 20  # 25% of 40 per case
    zs = [z for name, z in picked.origins if name == "a"]
    assert sum(1 for z in zs if not 10 <= z < 30) == 1  # at most 10% background-only slices
    assert min(zs[:-1] if zs[-1] >= 30 else zs) < 13 and max(z for z in zs if z < 30) > 26  # spread over the organ
    assert pick_slices(volumes, 0.25, 0.1, seed=1).origins == picked.origins
    everything = pick_slices(volumes, 1.0, 0.0, seed=1)
    assert len(everything) == 40 and all(10 <= z < 30 for _, z in everything.origins)  # only organ slices
    val = validation_slices(volumes[:1], per_case=5)[0]
    assert [z for _, z in val.origins] == [0, 10, 20, 29, 39]


def test_batches_are_model_ready():
    image, label = _slice()
    slices = SliceSet([image, image], [label, label], [("a", 0), ("a", 1)])
    x, y = augmented_batch(slices, [1, 0], 32, seed=0, epoch=0, augment=AugmentSettings())
    assert x.shape == (2, 3, 32, 32) and y.shape == (2, 32, 32) and y.dtype == torch.long
    assert set(y.unique().tolist()) <= {0, 2, 3}


def test_dice_loss_is_zero_for_a_perfect_prediction_and_batch_wise():
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[0, 2:5, 2:5] = 1
    perfect = _logits(labels)
    loss, parts = hsam_loss({"stage1": _logits(labels_at(labels, (4, 4))), "stage2": perfect}, labels, 0.8, 0.9)
    assert loss < 1e-5 and parts["dice1"] < 1e-5 and parts["ce2"] < 1e-5
    # Class 2 is absent everywhere: batch-wise Dice counts it as solved when nothing predicts it.
    inter, denom = dice_sums(perfect, labels)
    assert denom[2] < 1e-10
    worse, _ = hsam_loss({"stage1": torch.zeros(2, 3, 4, 4), "stage2": torch.zeros_like(perfect)}, labels, 0.8, 0.9)
    assert worse > 0.5


def _logits(labels):
    return torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 50


def test_stage_one_is_supervised_at_its_own_resolution():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :, 4:] = 1
    assert labels_at(labels, (4, 4)).tolist() == [[[0, 0, 1, 1]] * 4]
    weight = hsam_loss({"stage1": torch.zeros(1, 2, 4, 4), "stage2": torch.zeros(1, 2, 8, 8)}, labels, 0.8, 0.9)
    assert weight[0].item() == pytest.approx(0.8 * weight[1]["stage1"] + 0.2 * weight[1]["stage2"])


def test_stage_weight_schedules():
    assert stage1_weight(0) == pytest.approx(0.8)
    assert stage1_weight(100) == pytest.approx(0.8 * math.exp(-0.5))
    assert stage1_weight(0, "release") == pytest.approx(0.4)
    assert 1 - stage1_weight(299, "release") == pytest.approx(0.975, abs=1e-3)  # method notes §10.1 table
    with pytest.raises(ValueError):
        stage1_weight(0, "other")


def test_stage_weights_span_the_run_or_follow_the_epoch_index():
    # Over the run: a 30-epoch run of 630 steps reads the whole 300-epoch curve, so stage 2 carries most of the
    # loss by its end; over epochs it would stop at the curve's start (0.692 at epoch 29).
    total = 630
    assert schedule_epoch(0, 0, total) == 0
    assert schedule_epoch(315, 15, total) == pytest.approx(150)
    assert stage1_weight(schedule_epoch(total - 1, 29, total)) == pytest.approx(0.8 * math.exp(-1.5), abs=2e-3)
    assert schedule_epoch(total - 1, 29, total, "epochs") == 29
    assert stage1_weight(schedule_epoch(total - 1, 29, total, "epochs")) == pytest.approx(0.692, abs=1e-3)
    with pytest.raises(ValueError):
        schedule_epoch(0, 0, total, "steps")


def test_learning_rate_warmup_then_poly_decay():
    total, base = 4200, 0.0025
    warmup = default_warmup(total)
    assert warmup == 252
    assert learning_rate(0, base, 250, total) == pytest.approx(base / 250)
    assert learning_rate(249, base, 250, total) == pytest.approx(base)
    assert learning_rate(250, base, 250, total) == pytest.approx(base)
    assert learning_rate(total - 1, base, 250, total) == pytest.approx(base * (250 / 4200) ** 0.9, rel=1e-2)
    rates = [learning_rate(k, base, 250, total) for k in range(250, total)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_stage_weights_over_is_a_cli_flag_and_is_checked(tmp_path):
    from hsam.cli import build_parser
    from hsam.commands.train import settings_from_args
    from hsam.train import TrainSettings, TrainingError

    def over(*flags):
        return settings_from_args(build_parser().parse_args(["train", "--out", str(tmp_path), *flags]))

    assert over().stage_weights_over == "run"
    assert over("--stage-weights-over", "epochs").stage_weights_over == "epochs"
    with pytest.raises(TrainingError, match="--stage-weights-over"):
        TrainSettings(out=str(tmp_path), stage_weights_over="steps").validate()
    assert over().organ_jitter == 0.0 and over("--organ-jitter", "0.15").organ_jitter == 0.15
    with pytest.raises(TrainingError, match="--organ-jitter must be in"):
        TrainSettings(out=str(tmp_path), organ_jitter=0.8).validate()
    assert over().organ_levels == 0.0 and over("--organ-levels", "0.5").organ_levels == 0.5
    with pytest.raises(TrainingError, match="--organ-levels must be in"):
        TrainSettings(out=str(tmp_path), organ_levels=1.5).validate()
    assert over().organ_gain == 0.0 and over("--organ-gain", "0.5").organ_gain == 0.5
    with pytest.raises(TrainingError, match="--organ-gain must be in"):
        TrainSettings(out=str(tmp_path), organ_gain=1.5).validate()
    assert over().coarse_views == 0.0 and over("--coarse-views", "0.3").coarse_views == 0.3
    with pytest.raises(TrainingError, match="--coarse-views must be in"):
        TrainSettings(out=str(tmp_path), coarse_views=2.0).validate()


def test_a_state_from_before_a_setting_existed_resumes_with_what_it_was_trained_with(tmp_path):
    # States written before --ema and --stage-weights-over existed were trained without an average and with the
    # stage weight at the epoch index: resuming them needs exactly those settings, and the error says so.
    from hsam.train import TrainingError
    from hsam.train.checkpoint import BEFORE_ADDED, check_same_settings

    old = {"lr": 0.002}
    check_same_settings(old, {"lr": 0.002, "ema": 0.0, "stage_weights_over": "epochs", "organ_jitter": 0.0,
                              "lora_blocks": 0, "organ_levels": 0.0, "coarse_views": 0.0,
                              "organ_gain": 0.0, "modality": None}, tmp_path)
    with pytest.raises(TrainingError, match="stage_weights_over: 'epochs' then, 'run' now"):
        check_same_settings(old, {**BEFORE_ADDED, "lr": 0.002, "stage_weights_over": "run"}, tmp_path)
