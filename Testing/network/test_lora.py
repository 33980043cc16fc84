"""LoRA: identity at start, merge is exact, only adapters and decoders train."""
from __future__ import annotations

import torch

from hsam.network import HSAMConfig, build_hsam
from hsam.network.lora import LoRAQKV, lora_modules


def _randomise_lora(model):
    for _, module in lora_modules(model.backbone):
        torch.nn.init.normal_(module.b_q.weight, std=0.05)
        torch.nn.init.normal_(module.b_v.weight, std=0.05)


def test_lora_starts_as_identity_on_real_litemedsam(ct_slice):
    plain = build_hsam(HSAMConfig(lora_rank=0)).eval()
    adapted = build_hsam(HSAMConfig(lora_rank=4)).eval()
    with torch.no_grad():
        torch.testing.assert_close(adapted.backbone(ct_slice), plain.backbone(ct_slice))
    assert sum(1 for _ in lora_modules(adapted.backbone)) == 10  # every TinyViT attention block


def test_merged_equals_unmerged():
    for backbone in ("litemedsam_tiny", "sam_vit_tiny"):
        model = build_hsam(HSAMConfig(backbone=backbone, lora_rank=3), "random").eval()
        _randomise_lora(model)
        x = torch.rand(2, 3, 64, 64)
        before = model.predict_logits(x)["fused"]
        assert model.merge_lora() > 0
        assert not model.has_unmerged_lora
        assert not any(isinstance(m, LoRAQKV) for m in model.modules())
        torch.testing.assert_close(model.predict_logits(x)["fused"], before, rtol=1e-4, atol=1e-4)


def test_lora_touches_only_q_and_v():
    model = build_hsam(HSAMConfig(backbone="sam_vit_tiny", lora_rank=2), "random")
    _randomise_lora(model)
    (_, module), *_ = lora_modules(model.backbone)
    dim = module.qkv.in_features
    merged = module.merged()
    delta = merged.weight - module.qkv.weight
    assert delta[:dim].abs().sum() > 0 and delta[2 * dim:].abs().sum() > 0
    assert delta[dim:2 * dim].abs().sum() == 0  # k untouched


def test_only_lora_and_decoder_parameters_train():
    model = build_hsam(HSAMConfig(backbone="litemedsam_tiny", lora_rank=4), "random")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    backbone_trainable = [n for n in trainable if n.startswith("backbone.")]
    assert backbone_trainable and all(n.split(".")[-2] in ("a_q", "b_q", "a_v", "b_v") for n in backbone_trainable)
    assert any(n.startswith("stage1.") for n in trainable) and any(n.startswith("stage2.") for n in trainable)
    assert "prompt.no_mask_embed.weight" in trainable
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("backbone.") for n in frozen)
