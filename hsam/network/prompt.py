"""Prompt-free inputs of the decoders: the learned dense "no mask" embedding and SAM's Fourier positional grid."""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn as nn
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom


class PromptEmbeddings(nn.Module):
    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.no_mask_embed = nn.Embedding(1, dim)
        self.pe_layer = PositionEmbeddingRandom(dim // 2)
        self._pe_cache: Dict[Tuple, torch.Tensor] = {}

    def dense(self, size: int) -> torch.Tensor:
        """(1, D, size, size): added to the image embedding where SAM would add a mask prompt."""
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(-1, -1, size, size)

    def image_pe(self, size: int) -> torch.Tensor:
        """(1, D, size, size) positional encoding; constant, so cached outside training."""
        matrix = self.pe_layer.positional_encoding_gaussian_matrix
        key = (size, matrix.device, matrix.dtype, matrix.data_ptr(), matrix._version)
        if self.training or torch.is_grad_enabled():
            return self.pe_layer((size, size))[None]
        if key not in self._pe_cache:
            self._pe_cache = {key: self.pe_layer((size, size))[None]}
        return self._pe_cache[key]
