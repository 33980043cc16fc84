"""Stage 2: the refining decoder of the hierarchy.

Its transformer reads the (CMAttn-enhanced) embedding with learnable mask cross-attention guided by the stage-1
probabilities; its pixel decoder joins stage-1 pixel features through the hierarchical pixel decoder and predicts
at full resolution. Each H-SAM component can be switched off for ablations.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from segment_anything.modeling.mask_decoder import MLP

from .pixel_decoder import HierarchicalPixelDecoder
from .stage1_decoder import output_upscaling
from .two_way_transformer import TwoWayTransformer


class Stage2Decoder(nn.Module):
    def __init__(self, num_classes: int, dim: int = 256, depth: int = 2, num_heads: int = 8, mlp_dim: int = 2048,
                 block_order: str = "sam", mask_attention: bool = True, pixel_decoder_upsample: Optional[int] = 4,
                 token_dropout: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.mask_attention = mask_attention
        # Cross-attention at full width (no 2x downsampling): the mask multiplies per-head maps of all 256 channels.
        self.transformer = TwoWayTransformer(depth, dim, num_heads, mlp_dim, cross_downsample=1,
                                             block_order=block_order, token_dropout=token_dropout)
        self.mask_tokens = nn.Embedding(num_classes, dim)
        self.output_upscaling = output_upscaling(dim)
        if pixel_decoder_upsample:
            self.pixel_decoder: Optional[HierarchicalPixelDecoder] = HierarchicalPixelDecoder(
                dim // 8, dim // 16, pixel_decoder_upsample)
            out_ch, layers = dim // 16, 5
        else:
            self.pixel_decoder = None
            out_ch, layers = dim // 8, 3
        self.output_hypernetworks_mlps = nn.ModuleList([MLP(dim, dim, out_ch, layers) for _ in range(num_classes)])

    def forward(self, embedding: torch.Tensor, image_pe: torch.Tensor, mask_probs: torch.Tensor,
                stage1_pixels: torch.Tensor) -> torch.Tensor:
        """embedding (B, D, h, w) already enhanced; mask_probs (B, C, h*w) stage-1 class probabilities."""
        b, d, h, w = embedding.shape
        tokens = self.mask_tokens.weight[None].expand(b, -1, -1)
        mask = mask_probs if self.mask_attention else None
        hs, keys = self.transformer(embedding, image_pe, tokens, mask)
        pixels = self.output_upscaling(keys.transpose(1, 2).reshape(b, d, h, w))
        if self.pixel_decoder is not None:
            pixels = self.pixel_decoder(pixels, stage1_pixels)
        hyper = torch.stack([mlp(hs[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        return (hyper @ pixels.flatten(2)).view(b, self.num_classes, *pixels.shape[2:])
