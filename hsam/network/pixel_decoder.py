"""Hierarchical pixel decoder (paper §3.4): stage 2's upscaled features are joined with stage 1's through a skip
connection and taken further up, U-Net style, to the full input resolution.

Input channel order is [stage 2, stage 1], as in the released weights. ``upsample`` is how far past the stage-1
grid it goes: 4 for SAM ViT at 512 (128 -> 512); 1 keeps the grid (LiteMedSAM, whose stage 1 is already at 256)
and then the two steps are 3x3 convolutions.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from segment_anything.modeling.common import LayerNorm2d

UPSAMPLE_FACTORS = (1, 2, 4)


def _step(in_ch: int, out_ch: int, up: bool) -> nn.Module:
    if up:
        return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)


class HierarchicalPixelDecoder(nn.Module):
    def __init__(self, stage_channels: int = 32, out_channels: int = 16, upsample: int = 4) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_FACTORS:
            raise ValueError(f"pixel decoder upsample must be one of {UPSAMPLE_FACTORS}, got {upsample}")
        self.upsample = upsample
        mid = stage_channels
        self.layers = nn.Sequential(
            _step(2 * stage_channels, mid, upsample >= 2), LayerNorm2d(mid), nn.GELU(),
            _step(mid, out_channels, upsample >= 4), LayerNorm2d(out_channels), nn.GELU())
        self.out_channels = out_channels

    def forward(self, stage2_pixels: torch.Tensor, stage1_pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([stage2_pixels, stage1_pixels], dim=1))
