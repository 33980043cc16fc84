"""The fused SAM ViT attention used for inference gives the original attention's output, LoRA included."""
from __future__ import annotations

import copy

import numpy as np
import torch
from segment_anything.modeling.image_encoder import Attention

from hsam.infer.slice_predictor import SlicePredictor
from hsam.network import HSAMConfig, build_hsam
from hsam.network.fused_attention import FusedAttention, use_fused_attention
from hsam.models.card import CT_WINDOW


def _model(lora_rank: int):
    model = build_hsam(HSAMConfig(backbone="sam_vit_tiny", num_classes=3, lora_rank=lora_rank), "random", seed=3)
    generator = torch.Generator().manual_seed(0)
    for p in model.backbone.parameters():  # segment_anything starts rel-pos tables and LoRA B at zero
        p.data.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return model.eval()


def test_fused_attention_matches_the_original_windowed_and_global_blocks():
    model = _model(lora_rank=2)
    fused = copy.deepcopy(model)
    assert use_fused_attention(fused.backbone.encoder) == 2  # one windowed, one global block
    assert all(type(m) is not Attention for m in fused.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected, got = model.backbone(x), fused.backbone(x)
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_the_inference_path_uses_it_and_labels_do_not_change():
    model = _model(lora_rank=0)
    model.card = {"normalization": CT_WINDOW}
    volume = np.random.default_rng(0).uniform(-300, 300, size=(3, 64, 64)).astype(np.float32)
    reference = copy.deepcopy(model)
    with torch.inference_mode():
        from hsam.io.normalize import normalize
        from hsam.io.slices import slices_to_batch

        expected = reference.predict_logits(slices_to_batch(normalize(volume, CT_WINDOW), 64))["fused"].argmax(1)
    predictor = SlicePredictor(model, torch.device("cpu"), batch_size=2, precision="fp32")
    assert any(isinstance(m, FusedAttention) for m in predictor.model.modules())
    assert np.array_equal(predictor.predict(volume).labels, expected.numpy().astype(np.uint8))


def test_the_cpu_bf16_path_stays_within_bf16_rounding_of_float32():
    model = _model(lora_rank=0)
    fused = copy.deepcopy(model)
    use_fused_attention(fused.backbone.encoder)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = model.backbone(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fused.backbone(x)
    error = (got.float() - expected).abs().max()
    assert 0 < error < 0.05 * expected.abs().max()  # bf16 arithmetic ran, and stayed close
