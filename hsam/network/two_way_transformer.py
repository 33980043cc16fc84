"""SAM's two-way transformer (tokens <-> image embedding), with the two block orders and optional mask attention.

Parameter names are SAM's, so SAM / LiteMedSAM decoder weights load into the stage-1 transformer directly.

Block orders:
- ``"sam"``: self-attention, token->image, MLP, image->token (SAM, SAMed; the paper's "SAM's original decoder").
- ``"hsam"``: token->image, self-attention, MLP, image->token (the released H-SAM code; needed for its weights).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
from segment_anything.modeling.common import MLPBlock

from .mask_attention import MaskedAttention

BLOCK_ORDERS = ("sam", "hsam")


class TwoWayAttentionBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_dim: int, cross_downsample: int, skip_first_layer_pe: bool,
                 block_order: str = "sam", token_dropout: float = 0.0) -> None:
        super().__init__()
        if block_order not in BLOCK_ORDERS:
            raise ValueError(f"block_order must be one of {BLOCK_ORDERS}, got {block_order!r}")
        self.block_order = block_order
        self.skip_first_layer_pe = skip_first_layer_pe
        self.self_attn = MaskedAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = MaskedAttention(dim, num_heads, downsample_rate=cross_downsample)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = MaskedAttention(dim, num_heads, downsample_rate=cross_downsample)
        self.token_dropout = nn.Dropout(token_dropout)

    def _self(self, q: torch.Tensor, q_pe: torch.Tensor) -> torch.Tensor:
        if self.skip_first_layer_pe:
            return self.norm1(self.self_attn(q, q, q))
        qp = q + q_pe
        return self.norm1(q + self.self_attn(qp, qp, q))

    def _token_to_image(self, q, k, q_pe, k_pe, mask) -> torch.Tensor:
        m = None if mask is None else mask[:, None]
        out = self.cross_attn_token_to_image(q + q_pe, k + k_pe, k, m)
        return self.norm2(q + self.token_dropout(out))

    def forward(self, q: torch.Tensor, k: torch.Tensor, q_pe: torch.Tensor, k_pe: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``mask``: (B, N_tokens, N_pixels) or None."""
        if self.block_order == "sam":
            q = self._token_to_image(self._self(q, q_pe), k, q_pe, k_pe, mask)
        else:
            q = self._self(self._token_to_image(q, k, q_pe, k_pe, mask), q_pe)
        q = self.norm3(q + self.mlp(q))
        m = None if mask is None else mask.transpose(1, 2)[:, None]
        k = self.norm4(k + self.cross_attn_image_to_token(k + k_pe, q + q_pe, q, m))
        return q, k


class TwoWayTransformer(nn.Module):
    """Tokens (B, T, D) and image (B, D, h, w) -> updated tokens (B, T, D) and image tokens (B, h*w, D)."""

    def __init__(self, depth: int = 2, dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048,
                 cross_downsample: int = 2, block_order: str = "sam", token_dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, cross_downsample, skip_first_layer_pe=(i == 0),
                                 block_order=block_order, token_dropout=token_dropout)
            for i in range(depth)])
        # The final token->image attention is never masked and keeps SAM's 2x downsampling.
        self.final_attn_token_to_image = MaskedAttention(dim, num_heads, downsample_rate=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        k = image.flatten(2).transpose(1, 2)
        k_pe = image_pe.flatten(2).transpose(1, 2)
        q = tokens
        for layer in self.layers:
            q, k = layer(q, k, tokens, k_pe, mask)
        q = self.norm_final_attn(q + self.final_attn_token_to_image(q + tokens, k + k_pe, k))
        return q, k
