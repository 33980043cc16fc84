"""``--freeze-encoder``: compute every image embedding once and train only what comes after the encoder; with
``--lora-blocks N``, compute once the features that enter the encoder's last N blocks, and train those blocks' LoRA
and what comes after.

The encoder is the bulk of the compute and is frozen anyway when no LoRA is trained (or before the adapted blocks),
so its output for a given input never changes. Augmentation must then happen before the encoder: each training
slice is cached as ``views`` versions, the slice itself and ``views - 1`` augmented copies (drawn once with fixed
seeds), and every epoch uses one of them per slice. Embeddings are kept in float16 (2 MB per LiteMedSAM slice; the
features before its last 2 blocks 2.6 MB) to fit memory.
"""
from __future__ import annotations

import contextlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator, List, Optional

import numpy as np
import torch
import torch.nn as nn

from ..network.encoder_split import EncoderHead, EncoderTail
from .augment import AugmentSettings, augment_slice
from .dataset import SliceSet, to_batch, view_generator


@dataclass
class EmbeddingCache:
    embeddings: torch.Tensor  # (N, V, ...) float16: embeddings (D, h, w), or the features of head_as_encoder
    labels: torch.Tensor  # (N, V, S, S) uint8

    @property
    def views(self) -> int:
        return self.embeddings.shape[1]

    def batch(self, indices: List[int], views: List[int], device: torch.device):
        idx, v = torch.as_tensor(indices), torch.as_tensor(views)
        return (self.embeddings[idx, v].to(device, torch.float32), self.labels[idx, v].to(device).long())


def embeddings_as_input(model: nn.Module, lora_blocks: int = 0) -> ContextManager[None]:
    """Within the block, ``model(x)`` takes cached features in place of images: embeddings (the encoder is
    bypassed), or with ``lora_blocks`` the features entering the encoder's last blocks, which run with their LoRA."""
    backbone = model.backbone
    if not lora_blocks:
        return _encoder_replaced(model, nn.Identity())
    return _encoder_replaced(model, EncoderTail(backbone.encoder, backbone.img_size, lora_blocks))


def head_as_encoder(model: nn.Module, lora_blocks: int) -> ContextManager[None]:
    """Within the block, ``model.backbone(x)`` gives what is cached: the embedding, or with ``lora_blocks`` the
    features entering the encoder's last blocks."""
    backbone = model.backbone
    if not lora_blocks:
        return contextlib.nullcontext()
    return _encoder_replaced(model, EncoderHead(backbone.encoder, backbone.img_size, lora_blocks))


@contextmanager
def _encoder_replaced(model: nn.Module, part: nn.Module) -> Iterator[None]:
    backbone = model.backbone
    encoder = backbone.encoder
    backbone.encoder = part
    try:
        yield
    finally:
        backbone.encoder = encoder


@torch.no_grad()
def encode_slices(model: nn.Module, slices: SliceSet, size: int, views: int, seed: int,
                  augment: Optional[AugmentSettings], batch_size: int, device: torch.device,
                  on_batch: Callable[[int], None] = lambda n: None) -> EmbeddingCache:
    """Embeddings of every slice and view; view 0 is the slice itself, views 1.. are augmented copies."""
    views = views if augment is not None else 1
    jobs = [(i, v) for i in range(len(slices)) for v in range(views)]
    embeddings: Optional[torch.Tensor] = None
    labels = torch.zeros(len(slices), views, size, size, dtype=torch.uint8)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        images, targets = [], []
        for i, v in chunk:
            image, label = slices.images[i], slices.labels[i]
            if v:
                image, label = augment_slice(image, label, view_generator(seed, i, v), augment)
            images.append(image)
            targets.append(label)
        x, y = to_batch(images, targets, size)
        e = model.backbone(x.to(device)).to("cpu", torch.float16)
        if embeddings is None:
            embeddings = torch.zeros(len(slices), views, *e.shape[1:], dtype=torch.float16)
        for (i, v), emb, lab in zip(chunk, e, y):
            embeddings[i, v] = emb
            labels[i, v] = lab.to(torch.uint8)
        on_batch(len(chunk))
    return EmbeddingCache(embeddings, labels)


def pick_views(cache_views: int, generators: List[np.random.Generator]) -> List[int]:
    return [int(g.integers(cache_views)) for g in generators]
