"""Stage 1: SAM's mask decoder made prompt-free, one mask token per class (background included).

It produces the coarse prior of the hierarchy: logits at 4x the embedding grid (1/4 of a ViT's 512 input), the
per-class mask features that CMAttn reads, and its upscaled pixel features that the stage-2 pixel decoder reuses.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.mask_decoder import MLP

from .two_way_transformer import TwoWayTransformer


class Stage1Output(NamedTuple):
    logits: torch.Tensor  # (B, C, 4h, 4w)
    mask_features: torch.Tensor  # (B, C, h*w): class token · image token affinities
    pixel_features: torch.Tensor  # (B, D/8, 4h, 4w)


def output_upscaling(dim: int) -> nn.Sequential:
    """SAM's pixel decoder: two stride-2 transposed convolutions, D -> D/8 channels at 4x resolution."""
    return nn.Sequential(
        nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2), LayerNorm2d(dim // 4), nn.GELU(),
        nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2), nn.GELU())


class Stage1Decoder(nn.Module):
    def __init__(self, num_classes: int, dim: int = 256, depth: int = 2, num_heads: int = 8, mlp_dim: int = 2048,
                 block_order: str = "sam") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.transformer = TwoWayTransformer(depth, dim, num_heads, mlp_dim, cross_downsample=2,
                                             block_order=block_order)
        # SAM's IoU token stays among the queries: the pretrained transformer was trained with it.
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(num_classes, dim)
        self.output_upscaling = output_upscaling(dim)
        self.output_hypernetworks_mlps = nn.ModuleList([MLP(dim, dim, dim // 8, 3) for _ in range(num_classes)])

    def forward(self, embedding: torch.Tensor, image_pe: torch.Tensor, dense: torch.Tensor) -> Stage1Output:
        b, d, h, w = embedding.shape
        tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)[None].expand(b, -1, -1)
        hs, keys = self.transformer(embedding + dense, image_pe, tokens)
        mask_hs = hs[:, 1:]
        mask_features = mask_hs @ keys.transpose(1, 2)
        pixels = self.output_upscaling(keys.transpose(1, 2).reshape(b, d, h, w))
        hyper = torch.stack([mlp(mask_hs[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        logits = (hyper @ pixels.flatten(2)).view(b, self.num_classes, *pixels.shape[2:])
        return Stage1Output(logits, mask_features, pixels)
