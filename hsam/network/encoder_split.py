"""The image encoder cut in two at an attention block, for LoRA in its last blocks only (``--lora-blocks``).

The head (everything before the last N attention blocks) is frozen, so its output for a given image never changes
and training computes it once per cached view; the tail (those N blocks, with LoRA, and the neck) runs at every
step. On LiteMedSAM the last 2 blocks and the neck are about a third of the encoder's compute (its first stage runs
at full resolution), which makes adapting the encoder affordable on a CPU.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

import torch
import torch.nn as nn

from .tiny_vit import TinyViT

Step = Tuple[bool, Callable[[torch.Tensor], torch.Tensor]]  # (is an attention block, function)


def encoder_steps(encoder: nn.Module, size: int) -> List[Step]:
    """The encoder's forward pass on (B, 3, size, size) images as steps."""
    if isinstance(encoder, TinyViT):
        return encoder.steps(size)

    def embed(x: torch.Tensor) -> torch.Tensor:  # segment_anything's ImageEncoderViT.forward, before its blocks
        x = encoder.patch_embed(x)
        return x + encoder.pos_embed if encoder.pos_embed is not None else x

    def neck(x: torch.Tensor) -> torch.Tensor:
        return encoder.neck(x.permute(0, 3, 1, 2))

    return [(False, embed)] + [(True, block) for block in encoder.blocks] + [(False, neck)]


def tail_start(steps: List[Step], blocks: int) -> int:
    """The index of the step that starts the last ``blocks`` attention blocks."""
    attention = [i for i, (is_block, _) in enumerate(steps) if is_block]
    if not 1 <= blocks <= len(attention):
        raise ValueError(f"the encoder's last {blocks} attention blocks: it has {len(attention)}")
    return attention[-blocks]


class EncoderHead(nn.Module):
    """Images (B, 3, S, S) -> the features that enter the encoder's last ``blocks`` attention blocks."""

    def __init__(self, encoder: nn.Module, size: int, blocks: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.size = size
        # In the state dict, so an embedding store (which names entries by the weights) tells cuts apart.
        self.register_buffer("tail_blocks", torch.tensor(blocks))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        steps = encoder_steps(self.encoder, self.size)
        for _, step in steps[:tail_start(steps, int(self.tail_blocks))]:
            images = step(images)
        return images


class EncoderTail(nn.Module):
    """The head's features -> the embedding, through the encoder's last ``blocks`` attention blocks and neck."""

    def __init__(self, encoder: nn.Module, size: int, blocks: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.size = size
        self.blocks = blocks

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        steps = encoder_steps(self.encoder, self.size)
        for _, step in steps[tail_start(steps, self.blocks):]:
            features = step(features)
        return features
