"""The H-SAM model: backbone (+LoRA) -> stage 1 -> [CMAttn, mask cross-attention, hierarchical pixel decoder] ->
stage 2 -> fused prediction."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import Backbone
from .cmattn import CMAttn
from .config import HSAMConfig
from .lora import lora_modules, merge_lora
from .prompt import PromptEmbeddings
from .stage1_decoder import Stage1Decoder
from .stage2_decoder import Stage2Decoder


def _resize(logits: torch.Tensor, size: int) -> torch.Tensor:
    if logits.shape[-1] == size and logits.shape[-2] == size:
        return logits
    return F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)


class HSAM(nn.Module):
    def __init__(self, config: HSAMConfig, backbone: Backbone, prompt: PromptEmbeddings, stage1: Stage1Decoder,
                 cmattn: Optional[CMAttn], stage2: Optional[Stage2Decoder]) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.prompt = prompt
        self.stage1 = stage1
        self.cmattn = cmattn
        self.stage2 = stage2
        # The model card (model.json: labels, normalization, orientation, ...) of the directory this model was
        # loaded from, set by ``hsam.load_model``; inference reads its normalization and labels. None for a model
        # built here (``build_hsam``), which has no card until ``save_model`` writes one.
        self.card: Optional[Dict[str, Any]] = None

    @property
    def img_size(self) -> int:
        return self.backbone.img_size

    def forward(self, images: torch.Tensor, labels: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """images (B, 3, S, S) normalised per the model card; labels (B, H, W) only for CMAttn's training noise.

        Returns logits: "stage1" (B, C, 4h, 4w), "stage2" (B, C, full) and "fused" (B, C, S, S); without stage 2,
        "stage2" is absent and "fused" is stage 1 resized to S. "embedding" is the backbone's (B, D, h, w).
        """
        embedding = self.backbone(images)
        size = embedding.shape[-1]
        image_pe = self.prompt.image_pe(size)
        dense = self.prompt.dense(size)
        s1 = self.stage1(embedding, image_pe, dense)
        out = {"stage1": s1.logits, "embedding": embedding}
        if self.stage2 is None:
            out["fused"] = _resize(s1.logits, self.img_size)
            return out
        # The prior is resized as logits and turned into probabilities on the embedding grid; not detached, so the
        # stage-2 loss trains stage 1 through the mask attention.
        prior = F.interpolate(s1.logits, size=(size, size), mode="bilinear", align_corners=False)
        mask_probs = torch.softmax(prior, dim=1).flatten(2)
        if self.training and self.config.embedding_noise:
            spread = (embedding.max() - embedding.min()).detach()
            embedding = embedding + torch.randn_like(embedding) * self.config.embedding_noise * spread
        src = embedding + dense
        if self.cmattn is not None:
            src = self.cmattn(src, s1.mask_features, labels)
        src = src * self.config.stage2_input_scale
        logits2 = self.stage2(src, image_pe, mask_probs, s1.pixel_features)
        out["stage2"] = logits2
        out["fused"] = _resize(self.fuse(s1.logits, logits2), self.img_size)
        return out

    def fuse(self, logits1: torch.Tensor, logits2: torch.Tensor) -> torch.Tensor:
        up1 = _resize(logits1, logits2.shape[-1])
        if self.config.fusion == "logits":
            return (up1 + logits2) / 2
        # Mean of probabilities, returned as log-probabilities so softmax/argmax of "fused" give the average.
        return torch.logaddexp(F.log_softmax(up1, 1), F.log_softmax(logits2, 1)) - math.log(2.0)

    def predict_logits(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Inference on a float batch (B, 3, S, S) already normalised per the model card."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != self.img_size \
                or images.shape[3] != self.img_size:
            raise ValueError(f"expected images of shape (B, 3, {self.img_size}, {self.img_size}), "
                             f"got {tuple(images.shape)}")
        if self.training:
            self.eval()
        with torch.inference_mode():
            return self.forward(images)

    def merge_lora(self) -> int:
        """Fold LoRA into the backbone weights (for inference); returns how many adapters were merged."""
        return merge_lora(self.backbone)

    @property
    def has_unmerged_lora(self) -> bool:
        return any(True for _ in lora_modules(self.backbone))
