"""Learnable mask cross-attention (paper §3.3): X = M ⊙ softmax(QKᵀ/√d) V + X.

M is the stage-1 class-probability map resized to the embedding grid. It multiplies the attention weights after the
softmax, without renormalisation, so pixels the prior gives a low probability for a class contribute little to that
class token (and vice versa), and, unlike Mask2Former's binarised -inf mask, gradients flow back into stage 1.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from segment_anything.modeling.transformer import Attention


class MaskedAttention(Attention):
    """SAM's attention with an optional multiplicative mask on the attention weights.

    ``mask`` broadcasts to (B, heads, N_queries, N_keys); None gives plain attention.
    """

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        if mask is not None:
            attn = attn * mask.to(attn.dtype)
        return self.out_proj(self._recombine_heads(attn @ v))
