"""The encoder cut at an attention block (``--lora-blocks``): head then tail is the whole encoder, LoRA goes into the
last blocks only, and a model trained that way saves, loads and segments."""
from __future__ import annotations

import json

import pytest
import torch
from train_fixtures import btcv_pairs, tiny_settings

import hsam
from hsam.network.encoder_split import EncoderHead, EncoderTail, encoder_steps
from hsam.network.lora import LoRAQKV, lora_modules
from hsam.train import TrainingError, train


def _attention_blocks(backbone) -> int:
    return sum(is_block for is_block, _ in encoder_steps(backbone.encoder, backbone.img_size))


@pytest.mark.parametrize("backbone", ["litemedsam_tiny", "sam_vit_tiny"])
def test_head_then_tail_is_the_whole_encoder(backbone):
    model = hsam.build_hsam(hsam.HSAMConfig(backbone=backbone, lora_rank=0), "random", seed=1).eval()
    encoder, size = model.backbone.encoder, model.backbone.img_size
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        whole = encoder(images)
        blocks = _attention_blocks(model.backbone)
        assert blocks >= 2
        for n in range(1, blocks + 1):
            features = EncoderHead(encoder, size, n)(images)
            assert features.shape != whole.shape  # really cut inside the encoder
            torch.testing.assert_close(EncoderTail(encoder, size, n)(features), whole, rtol=0, atol=0)
    with pytest.raises(ValueError, match="last 99 attention blocks"):
        EncoderHead(encoder, size, 99)(images)


def test_tinyvit_forward_as_steps_keeps_litemedsam_embedding():
    """The pretrained LiteMedSAM encoder gives the embedding its stage order implies: a 64x64 grid of 256."""
    model = hsam.build_hsam(hsam.HSAMConfig(lora_rank=0), "pretrained").eval()
    with torch.no_grad():
        embedding = model.backbone(torch.zeros(1, 3, 256, 256))
    assert embedding.shape == (1, 256, 64, 64) and torch.isfinite(embedding).all()
    assert _attention_blocks(model.backbone) == 10  # TinyViT's 2 + 6 + 2 attention blocks


def test_lora_only_in_the_last_blocks():
    model = hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny", lora_rank=2, lora_blocks=2), "random")
    adapted = [attn for attn, _, _ in model.backbone.lora_targets() if isinstance(attn.qkv, LoRAQKV)]
    targets = [attn for attn, _, _ in model.backbone.lora_targets()]
    assert adapted == targets[-2:] and len(targets) > 2
    with pytest.raises(ValueError, match="this encoder has"):
        hsam.build_hsam(hsam.HSAMConfig(backbone="litemedsam_tiny", lora_rank=2, lora_blocks=9), "random")


def test_training_the_last_blocks_changes_only_their_lora(data_dir, tmp_path):
    out = tmp_path / "tail"
    settings = tiny_settings(out, btcv_pairs(data_dir), lora_blocks=1, cached_views=2, epochs=2,
                             embedding_store=str(tmp_path / "store"))
    train(settings)
    card = json.loads((out / "model.json").read_text())
    assert (card["config"]["lora_rank"], card["config"]["lora_blocks"]) == (2, 1)
    trained = hsam.load_model(out, merge_lora=False)
    adapters = dict(lora_modules(trained.backbone))
    assert len(adapters) == 1
    (adapter,) = adapters.values()
    assert adapter.b_q.weight.abs().sum() > 0  # B starts at zero: it trained
    stored = sorted((tmp_path / "store").rglob("*.npy"))
    assert stored  # the head's features were kept, and a second run reads them instead of computing them
    train(tiny_settings(tmp_path / "again", btcv_pairs(data_dir), lora_blocks=1, cached_views=2, epochs=1,
                        embedding_store=str(tmp_path / "store")))
    assert sorted((tmp_path / "store").rglob("*.npy")) == stored
    with pytest.raises(TrainingError, match="give one of them"):
        train(tiny_settings(tmp_path / "both", btcv_pairs(data_dir), lora_blocks=1, freeze_encoder=True))


def test_a_base_model_without_lora_gets_it_in_its_last_blocks(data_dir, tmp_path):
    base = tmp_path / "base"
    train(tiny_settings(base, btcv_pairs(data_dir), freeze_encoder=True, epochs=1))
    out = tmp_path / "adapted"
    train(tiny_settings(out, btcv_pairs(data_dir), base=str(base), lora_blocks=2, epochs=1))
    config = json.loads((out / "model.json").read_text())["config"]
    assert (config["lora_rank"], config["lora_blocks"]) == (2, 2)
    assert len(dict(lora_modules(hsam.load_model(out, merge_lora=False).backbone))) == 2
    labels = hsam.load_model(out).predict_logits(torch.zeros(1, 3, 64, 64))["fused"]
    assert torch.isfinite(labels).all()
